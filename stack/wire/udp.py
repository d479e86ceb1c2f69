"""UDP datagrams over IPv4 (RFC 768, RFC 1122 4.1.3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from stack.wire._fields import check_uint
from stack.wire.checksum import transport_checksum
from stack.wire.errors import WireError

HEADER_LENGTH = 8
PROTOCOL_NUMBER = 17
NO_CHECKSUM = 0

_HEADER = struct.Struct("!HHHH")


@dataclass(frozen=True)
class UdpDatagram:
    """A UDP datagram. ``length`` and ``checksum`` left as None are computed by ``emit``;
    ``parse`` always fills them in. A ``checksum`` of 0 means "no checksum" (RFC 768) and
    is sent as 0."""

    src_port: int
    dst_port: int
    payload: bytes = b""
    length: int | None = None
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint("src_port", self.src_port, 16)
        check_uint("dst_port", self.dst_port, 16)
        check_uint("length", HEADER_LENGTH + len(self.payload), 16)
        if self.length is not None and self.length != HEADER_LENGTH + len(self.payload):
            raise ValueError(f"length {self.length} != 8 + {len(self.payload)} payload bytes")
        if self.checksum is not None:
            check_uint("checksum", self.checksum, 16)

    @property
    def has_checksum(self) -> bool:
        return self.checksum != NO_CHECKSUM

    @classmethod
    def parse(
        cls,
        data: bytes,
        src: IPv4Address,
        dst: IPv4Address,
        *,
        verify_checksum: bool = True,
    ) -> UdpDatagram:
        """``data`` is the IP payload; ``src`` and ``dst`` the IP addresses, for the
        pseudo-header. Bytes beyond the length field are ignored."""
        if len(data) < HEADER_LENGTH:
            raise WireError("udp.truncated", f"{len(data)} bytes, header needs 8")
        src_port, dst_port, length, checksum = _HEADER.unpack_from(data)
        if length < HEADER_LENGTH:
            raise WireError("udp.bad_length", f"length field {length} < 8")
        if length > len(data):
            raise WireError("udp.truncated", f"length field {length}, {len(data)} bytes given")
        datagram = bytes(data[:length])
        # RFC 768: an all-zero checksum means the sender generated none.
        # RFC 1122 4.1.3.4: a datagram with a bad checksum MUST be silently discarded.
        if (
            verify_checksum
            and checksum != NO_CHECKSUM
            and transport_checksum(src, dst, PROTOCOL_NUMBER, datagram) != 0
        ):
            raise WireError("udp.bad_checksum", f"checksum {checksum:#06x}")
        return cls(src_port, dst_port, datagram[HEADER_LENGTH:], length, checksum)

    def emit(self, src: IPv4Address, dst: IPv4Address) -> bytes:
        length = HEADER_LENGTH + len(self.payload)
        checksum = self.checksum
        if checksum is None:
            unsummed = _HEADER.pack(self.src_port, self.dst_port, length, 0) + self.payload
            # RFC 768: "If the computed checksum is zero, it is transmitted as all ones."
            checksum = transport_checksum(src, dst, PROTOCOL_NUMBER, unsummed) or 0xFFFF
        return _HEADER.pack(self.src_port, self.dst_port, length, checksum) + self.payload
