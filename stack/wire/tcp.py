"""TCP segments over IPv4 (RFC 9293 3.1); options live in ``tcp_options``."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from ipaddress import IPv4Address
from typing import TypeVar

from stack.wire._fields import check_uint
from stack.wire.checksum import transport_checksum
from stack.wire.errors import WireError
from stack.wire.tcp_options import (
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    TcpOptionKind,
    Timestamps,
    UnknownOption,
    WindowScale,
    encode_tcp_options,
    parse_tcp_options,
)

__all__ = [
    "MIN_HEADER_LENGTH",
    "NO_FLAGS",
    "PROTOCOL_NUMBER",
    "Eol",
    "Mss",
    "Nop",
    "Sack",
    "SackPermitted",
    "TcpFlags",
    "TcpOption",
    "TcpOptionKind",
    "TcpSegment",
    "Timestamps",
    "UnknownOption",
    "WindowScale",
    "encode_tcp_options",
    "parse_tcp_options",
]

MIN_HEADER_LENGTH = 20
PROTOCOL_NUMBER = 6

# ports, sequence, acknowledgment, data offset + reserved, flags, window, checksum, urgent
_FIXED = struct.Struct("!HHIIBBHHH")

_Option = TypeVar("_Option", Eol, Nop, Mss, WindowScale, SackPermitted, Sack, Timestamps)


class TcpFlags(IntFlag):
    """The control bits (RFC 9293 3.1; ECE and CWR from RFC 3168)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


NO_FLAGS = TcpFlags(0)


@dataclass(frozen=True)
class TcpSegment:
    """A TCP segment.

    ``options`` is a tuple of typed entries (see ``tcp_options``); ``data_offset`` follows
    from it. ``reserved`` holds the 4 bits between data offset and flags as received
    (RFC 9293: zero when sent, ignored when received). A None ``checksum`` is computed by
    ``emit``; ``parse`` always fills it in.
    """

    src_port: int
    dst_port: int
    seq: int = 0
    ack: int = 0
    flags: TcpFlags = NO_FLAGS
    window: int = 0
    urgent_pointer: int = 0
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""
    reserved: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint("src_port", self.src_port, 16)
        check_uint("dst_port", self.dst_port, 16)
        check_uint("seq", self.seq, 32)
        check_uint("ack", self.ack, 32)
        check_uint("flags", self.flags, 8)
        check_uint("window", self.window, 16)
        check_uint("urgent_pointer", self.urgent_pointer, 16)
        check_uint("reserved", self.reserved, 4)
        if self.checksum is not None:
            check_uint("checksum", self.checksum, 16)
        encode_tcp_options(self.options)  # raises ValueError if they cannot be sent

    @property
    def header_length(self) -> int:
        """In bytes."""
        return MIN_HEADER_LENGTH + len(encode_tcp_options(self.options))

    @property
    def data_offset(self) -> int:
        """Header length in 32-bit words, as on the wire."""
        return self.header_length // 4

    @property
    def sequence_length(self) -> int:
        """Sequence space the segment occupies: its data, plus one each for SYN and FIN."""
        return len(self.payload) + (TcpFlags.SYN in self.flags) + (TcpFlags.FIN in self.flags)

    def find_option(self, option_type: type[_Option]) -> _Option | None:
        """The first option of that type, e.g. ``segment.find_option(Mss)``, or None."""
        for option in self.options:
            if isinstance(option, option_type):
                return option
        return None

    @classmethod
    def parse(
        cls,
        data: bytes,
        src: IPv4Address,
        dst: IPv4Address,
        *,
        verify_checksum: bool = True,
    ) -> TcpSegment:
        """``data`` is the IP payload; ``src`` and ``dst`` the IP addresses, for the
        pseudo-header."""
        if len(data) < MIN_HEADER_LENGTH:
            raise WireError("tcp.truncated", f"{len(data)} bytes, header needs 20")
        src_port, dst_port, seq, ack, offset_byte, flags, window, checksum, urgent = (
            _FIXED.unpack_from(data)
        )
        header_length = (offset_byte >> 4) * 4
        if header_length < MIN_HEADER_LENGTH:
            raise WireError("tcp.bad_data_offset", f"data offset {offset_byte >> 4} < 5")
        if header_length > len(data):
            raise WireError(
                "tcp.truncated", f"data offset says {header_length} bytes, {len(data)} given"
            )
        # RFC 9293 3.10.7 / RFC 1122 4.2.2.7: a segment with a bad checksum is discarded.
        if verify_checksum and transport_checksum(src, dst, PROTOCOL_NUMBER, bytes(data)) != 0:
            raise WireError("tcp.bad_checksum", f"checksum {checksum:#06x}")
        return cls(
            src_port=src_port,
            dst_port=dst_port,
            seq=seq,
            ack=ack,
            flags=TcpFlags(flags),
            window=window,
            urgent_pointer=urgent,
            options=parse_tcp_options(bytes(data[MIN_HEADER_LENGTH:header_length])),
            payload=bytes(data[header_length:]),
            reserved=offset_byte & 0x0F,
            checksum=checksum,
        )

    def emit(self, src: IPv4Address, dst: IPv4Address) -> bytes:
        options = encode_tcp_options(self.options)
        data_offset = (MIN_HEADER_LENGTH + len(options)) // 4
        segment = bytearray(
            _FIXED.pack(
                self.src_port,
                self.dst_port,
                self.seq,
                self.ack,
                (data_offset << 4) | self.reserved,
                self.flags,
                self.window,
                0 if self.checksum is None else self.checksum,
                self.urgent_pointer,
            )
        )
        segment += options + self.payload
        if self.checksum is None:
            checksum = transport_checksum(src, dst, PROTOCOL_NUMBER, bytes(segment))
            struct.pack_into("!H", segment, 16, checksum)
        return bytes(segment)
