"""setsockopt's checks for the options every socket shares (SOL_SOCKET, IPPROTO_IP), as
Linux makes them; each transport adds its own options on top."""

from __future__ import annotations

from typing import Final

from stack.errors import SocketError, Unsupported
from stack.settings import Settings

MIN_RECEIVE_BUFFER: Final = 2304  # Linux SOCK_MIN_RCVBUF
PMTUDISC_MODES: Final = ("IP_PMTUDISC_DONT", "IP_PMTUDISC_WANT", "IP_PMTUDISC_DO",
                         "IP_PMTUDISC_PROBE")
# An option of the other transport is ENOPROTOOPT, as Linux answers it.
OTHER_TRANSPORT_PREFIX: Final = {"udp": "TCP_", "tcp": "UDP_"}


def checked_option(
    options: dict[str, int | str], name: str, value: object, settings: Settings, *,
    transport: str,
) -> int | str:
    """The value to store for ``name``, or the error Linux gives: an unknown option, a
    path MTU discovery mode that does not exist, a non-integer, an IP_TTL out of range.
    SO_RCVBUF is doubled (socket(7)) and IP_TTL -1 means the default."""
    if name not in options:
        if name.startswith(OTHER_TRANSPORT_PREFIX[transport]):
            raise SocketError("ENOPROTOOPT", f"{name} on a {transport.upper()} socket")
        raise Unsupported(f"socket option {name}")
    if name == "IP_MTU_DISCOVER":
        if not isinstance(value, str) or value not in PMTUDISC_MODES:
            raise SocketError("EINVAL", f"unknown mode {value!r}")
        return value
    if not isinstance(value, int):
        raise SocketError("EINVAL", f"{name} takes an integer")
    if name == "SO_RCVBUF":
        # socket(7): the kernel doubles the value, within [SOCK_MIN_RCVBUF, rmem_max * 2].
        return max(MIN_RECEIVE_BUFFER, min(value, settings.receive_buffer_max) * 2)
    if name == "IP_TTL":
        if not (value == -1 or 1 <= value <= 255):
            raise SocketError("EINVAL", "IP_TTL out of range")
        return settings.default_ttl if value == -1 else value
    return value
