"""IPv4 headers and packets (RFC 791), checked as RFC 1122 3.2.1 and RFC 1812 5.2.2 ask."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from ipaddress import IPv4Address

from stack.wire._fields import check_uint
from stack.wire.checksum import internet_checksum
from stack.wire.errors import WireError

MIN_HEADER_LENGTH = 20
MAX_HEADER_LENGTH = 60
MAX_OPTIONS_LENGTH = MAX_HEADER_LENGTH - MIN_HEADER_LENGTH
MAX_TOTAL_LENGTH = 0xFFFF

# version+IHL, TOS, total length, identification, flags+offset, TTL, protocol, checksum
_FIXED = struct.Struct("!BBHHHBBH")


class IpProtocol(IntEnum):
    ICMP = 1
    TCP = 6
    UDP = 17


class Ipv4Flags(IntFlag):
    """The three bits in front of the fragment offset (RFC 791 3.1)."""

    MORE_FRAGMENTS = 0x1
    DONT_FRAGMENT = 0x2
    RESERVED = 0x4  # "must be zero"; kept, not refused, so a received header re-emits as is


NO_FLAGS = Ipv4Flags(0)


class Ipv4OptionKind(IntEnum):
    """Option type octets (copied flag, class and number together), RFC 791 3.1."""

    END_OF_LIST = 0
    NO_OPERATION = 1
    RECORD_ROUTE = 7
    TIMESTAMP = 68
    SECURITY = 130
    LOOSE_SOURCE_ROUTE = 131
    STREAM_ID = 136
    STRICT_SOURCE_ROUTE = 137
    ROUTER_ALERT = 148  # RFC 2113


@dataclass(frozen=True)
class Ipv4Option:
    """One option: ``kind`` is the whole type octet; ``data`` is what follows the length
    octet (empty for END_OF_LIST and NO_OPERATION, which are a single octet)."""

    kind: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("option kind", self.kind, 8)
        single = self.kind in (Ipv4OptionKind.END_OF_LIST, Ipv4OptionKind.NO_OPERATION)
        if single and self.data:
            raise ValueError("END_OF_LIST and NO_OPERATION carry no data")
        if len(self.data) > MAX_OPTIONS_LENGTH - 2:
            raise ValueError(f"option data of {len(self.data)} bytes cannot fit a header")

    @property
    def copied(self) -> bool:
        """Whether fragmentation copies this option into every fragment."""
        return bool(self.kind & 0x80)

    def encode(self) -> bytes:
        if self.kind in (Ipv4OptionKind.END_OF_LIST, Ipv4OptionKind.NO_OPERATION):
            return bytes([self.kind])
        return bytes([self.kind, 2 + len(self.data)]) + self.data


def parse_ipv4_options(raw: bytes) -> tuple[Ipv4Option, ...]:
    """Walk an options area: END_OF_LIST stops the walk (what follows is padding),
    NO_OPERATION is one octet, anything else is type, length (counting both), data."""
    options: list[Ipv4Option] = []
    position = 0
    while position < len(raw):
        kind = raw[position]
        if kind == Ipv4OptionKind.END_OF_LIST:
            options.append(Ipv4Option(kind))
            break
        if kind == Ipv4OptionKind.NO_OPERATION:
            options.append(Ipv4Option(kind))
            position += 1
            continue
        if position + 1 >= len(raw):
            raise WireError("ipv4.bad_option_length", f"option {kind} has no length octet")
        length = raw[position + 1]
        if length < 2 or position + length > len(raw):
            raise WireError(
                "ipv4.bad_option_length",
                f"option {kind} at {position} has length {length}, {len(raw) - position} left",
            )
        options.append(Ipv4Option(kind, bytes(raw[position + 2 : position + length])))
        position += length
    return tuple(options)


def encode_ipv4_options(options: Iterable[Ipv4Option]) -> bytes:
    """Options back to bytes, zero-padded to a multiple of four (zero is END_OF_LIST)."""
    raw = b"".join(option.encode() for option in options)
    raw += b"\x00" * (-len(raw) % 4)
    if len(raw) > MAX_OPTIONS_LENGTH:
        raise ValueError(f"{len(raw)} bytes of options exceed {MAX_OPTIONS_LENGTH}")
    return raw


@dataclass(frozen=True)
class Ipv4Header:
    """An IPv4 header.

    ``fragment_offset`` is in **bytes** (a multiple of 8), not in the 8-byte units of the
    wire. ``options`` holds the raw options area, padding included, as received: parsing
    does not judge it; ``parsed_options()`` walks it. ``total_length`` and ``checksum``
    left as None are computed by ``emit``; ``parse`` always fills them in.
    ``version`` (always 4) and ``ihl`` follow from the rest, so they are properties.
    """

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    ttl: int = 64
    tos: int = 0
    identification: int = 0
    flags: Ipv4Flags = NO_FLAGS
    fragment_offset: int = 0
    options: bytes = b""
    total_length: int | None = None
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint("protocol", self.protocol, 8)
        check_uint("ttl", self.ttl, 8)
        check_uint("tos", self.tos, 8)
        check_uint("identification", self.identification, 16)
        check_uint("flags", self.flags, 3)
        if self.fragment_offset % 8:
            offset = self.fragment_offset
            raise ValueError(f"fragment_offset is in bytes, a multiple of 8: {offset}")
        check_uint("fragment_offset // 8", self.fragment_offset // 8, 13)
        if len(self.options) % 4 or len(self.options) > MAX_OPTIONS_LENGTH:
            raise ValueError(f"options must be a multiple of 4 up to 40 bytes: {len(self.options)}")
        if self.total_length is not None:
            check_uint("total_length", self.total_length, 16)
            if self.total_length < self.header_length:
                raise ValueError(f"total_length {self.total_length} < header length")
        if self.checksum is not None:
            check_uint("checksum", self.checksum, 16)

    @property
    def version(self) -> int:
        return 4

    @property
    def header_length(self) -> int:
        """In bytes."""
        return MIN_HEADER_LENGTH + len(self.options)

    @property
    def ihl(self) -> int:
        """Header length in 32-bit words, as on the wire."""
        return self.header_length // 4

    @property
    def dont_fragment(self) -> bool:
        return Ipv4Flags.DONT_FRAGMENT in self.flags

    @property
    def more_fragments(self) -> bool:
        return Ipv4Flags.MORE_FRAGMENTS in self.flags

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0

    def parsed_options(self) -> tuple[Ipv4Option, ...]:
        """The options area walked; raises WireError("ipv4.bad_option_length")."""
        return parse_ipv4_options(self.options)

    @classmethod
    def parse(cls, data: bytes, *, verify_checksum: bool = True) -> Ipv4Header:
        """Read the header alone: the datagram may be cut short after it, as in the quote
        of an ICMP error. ``Ipv4Packet.parse`` also checks the total length."""
        if len(data) < MIN_HEADER_LENGTH:
            raise WireError("ipv4.truncated", f"{len(data)} bytes, header needs 20")
        version_ihl, tos, total_length, identification, flags_offset, ttl, protocol, checksum = (
            _FIXED.unpack_from(data)
        )
        # RFC 1122 3.2.1.1: a datagram whose version number is not 4 MUST be silently discarded.
        if version_ihl >> 4 != 4:
            raise WireError("ipv4.bad_version", f"version {version_ihl >> 4}")
        header_length = (version_ihl & 0x0F) * 4
        if header_length < MIN_HEADER_LENGTH:
            raise WireError("ipv4.bad_ihl", f"IHL {version_ihl & 0x0F} < 5")
        if header_length > len(data):
            raise WireError("ipv4.truncated", f"IHL says {header_length} bytes, {len(data)} given")
        if total_length < header_length:
            raise WireError(
                "ipv4.bad_total_length", f"total length {total_length} < header {header_length}"
            )
        # RFC 1122 3.2.1.2: a datagram with a bad header checksum MUST be silently discarded.
        if verify_checksum and internet_checksum(bytes(data[:header_length])) != 0:
            raise WireError("ipv4.bad_checksum", f"checksum {checksum:#06x}")
        return cls(
            src=IPv4Address(bytes(data[12:16])),
            dst=IPv4Address(bytes(data[16:20])),
            protocol=protocol,
            ttl=ttl,
            tos=tos,
            identification=identification,
            flags=Ipv4Flags(flags_offset >> 13),
            fragment_offset=(flags_offset & 0x1FFF) * 8,
            options=bytes(data[MIN_HEADER_LENGTH:header_length]),
            total_length=total_length,
            checksum=checksum,
        )

    def emit(self, payload_length: int = 0) -> bytes:
        """The header bytes. A None ``total_length`` becomes header + ``payload_length``;
        a None ``checksum`` is computed over the header."""
        total_length = self.total_length
        if total_length is None:
            total_length = self.header_length + payload_length
        check_uint("total_length", total_length, 16)
        header = bytearray(
            _FIXED.pack(
                0x40 | self.ihl,
                self.tos,
                total_length,
                self.identification,
                (int(self.flags) << 13) | (self.fragment_offset // 8),
                self.ttl,
                self.protocol,
                0 if self.checksum is None else self.checksum,
            )
        )
        header += self.src.packed + self.dst.packed + self.options
        if self.checksum is None:
            struct.pack_into("!H", header, 10, internet_checksum(bytes(header)))
        return bytes(header)


@dataclass(frozen=True)
class Ipv4Packet:
    """A header and its payload. When ``header.total_length`` is set it must equal
    header length + payload length."""

    header: Ipv4Header
    payload: bytes = b""

    def __post_init__(self) -> None:
        length = self.header.header_length + len(self.payload)
        if length > MAX_TOTAL_LENGTH:
            raise ValueError(f"packet of {length} bytes exceeds {MAX_TOTAL_LENGTH}")
        if self.header.total_length is not None and self.header.total_length != length:
            raise ValueError(f"total_length {self.header.total_length} != {length}")

    @classmethod
    def parse(cls, data: bytes, *, verify_checksum: bool = True) -> Ipv4Packet:
        """Bytes past ``total_length`` (Ethernet padding) are dropped."""
        header = Ipv4Header.parse(data, verify_checksum=verify_checksum)
        assert header.total_length is not None
        if header.total_length > len(data):
            raise WireError(
                "ipv4.truncated", f"total length {header.total_length}, {len(data)} bytes given"
            )
        return cls(header, bytes(data[header.header_length : header.total_length]))

    def emit(self) -> bytes:
        return self.header.emit(payload_length=len(self.payload)) + self.payload
