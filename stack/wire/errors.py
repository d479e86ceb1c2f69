"""The one error that parsing raises."""

from __future__ import annotations


class WireError(Exception):
    """Bytes from the wire that do not make a valid header.

    ``reason`` is short and machine-readable, ``"<layer>.<problem>"`` (for example
    ``"ipv4.bad_checksum"`` or ``"udp.truncated"``), so that the layer above can drop the
    frame and record why; ``detail`` is for people reading a log.

    Conventions for ``<problem>``: ``truncated`` when the buffer is shorter than the
    fixed header or than a length field claims; ``bad_<field>`` when a field contradicts
    the protocol or another field; ``unsupported_<field>`` when the value is legal but
    outside what this codec handles.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason
