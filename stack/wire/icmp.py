"""ICMP messages over IPv4 (RFC 792, RFC 1122 3.2.2, RFC 1191 4)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from stack.wire._fields import check_size, check_uint
from stack.wire.checksum import internet_checksum
from stack.wire.errors import WireError

HEADER_LENGTH = 8
_HEADER = struct.Struct("!BBH")


class IcmpType(IntEnum):
    ECHO_REPLY = 0
    DESTINATION_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14
    INFORMATION_REQUEST = 15
    INFORMATION_REPLY = 16


class UnreachableCode(IntEnum):
    """Codes of type 3: 0-5 from RFC 792 (4 with the MTU of RFC 1191), 6-12 RFC 1122."""

    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAGMENTATION_NEEDED = 4  # "and DF set"; carries the next-hop MTU (RFC 1191 4)
    SOURCE_ROUTE_FAILED = 5
    NET_UNKNOWN = 6
    HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_UNREACHABLE_FOR_TOS = 11
    HOST_UNREACHABLE_FOR_TOS = 12


class TimeExceededCode(IntEnum):
    TTL_EXCEEDED = 0
    FRAGMENT_REASSEMBLY = 1


class RedirectCode(IntEnum):
    NET = 0
    HOST = 1
    TOS_AND_NET = 2
    TOS_AND_HOST = 3


class ParameterProblemCode(IntEnum):
    POINTER = 0
    REQUIRED_OPTION_MISSING = 1  # RFC 1122 3.2.2.5


# Types whose message quotes the offending datagram: its IP header and at least 8 bytes.
ERROR_TYPES = frozenset(
    {
        IcmpType.DESTINATION_UNREACHABLE,
        IcmpType.SOURCE_QUENCH,
        IcmpType.REDIRECT,
        IcmpType.TIME_EXCEEDED,
        IcmpType.PARAMETER_PROBLEM,
    }
)


@dataclass(frozen=True)
class IcmpMessage:
    """An ICMP message: type, code, checksum, the 4 type-specific bytes that complete the
    header (``rest``), and the payload (echo data, or the quoted datagram of an error).
    A None ``checksum`` is computed by ``emit``; ``parse`` always fills it in."""

    type: int
    code: int
    rest: bytes = b"\x00\x00\x00\x00"
    payload: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint("type", self.type, 8)
        check_uint("code", self.code, 8)
        check_size("rest of header", self.rest, 4)
        if self.checksum is not None:
            check_uint("checksum", self.checksum, 16)

    # -- constructors for the messages the stack sends ---------------------------------

    @classmethod
    def echo_request(cls, identifier: int, sequence: int, data: bytes = b"") -> IcmpMessage:
        return cls(IcmpType.ECHO_REQUEST, 0, _pack_pair(identifier, sequence), data)

    @classmethod
    def echo_reply(cls, identifier: int, sequence: int, data: bytes = b"") -> IcmpMessage:
        return cls(IcmpType.ECHO_REPLY, 0, _pack_pair(identifier, sequence), data)

    @classmethod
    def destination_unreachable(cls, code: int, quoted: bytes) -> IcmpMessage:
        """``quoted``: the offending datagram's IP header and the start of its data."""
        return cls(IcmpType.DESTINATION_UNREACHABLE, code, b"\x00" * 4, quoted)

    @classmethod
    def fragmentation_needed(cls, next_hop_mtu: int, quoted: bytes) -> IcmpMessage:
        """RFC 1191 4: the unused high-order 16 bits stay zero, the low-order 16 carry
        the MTU of the next-hop network."""
        return cls(
            IcmpType.DESTINATION_UNREACHABLE,
            UnreachableCode.FRAGMENTATION_NEEDED,
            _pack_pair(0, next_hop_mtu),
            quoted,
        )

    @classmethod
    def time_exceeded(cls, code: int, quoted: bytes) -> IcmpMessage:
        return cls(IcmpType.TIME_EXCEEDED, code, b"\x00" * 4, quoted)

    @classmethod
    def parameter_problem(cls, pointer: int, quoted: bytes) -> IcmpMessage:
        """``pointer``: the octet of the quoted header where the problem was found."""
        check_uint("pointer", pointer, 8)
        return cls(
            IcmpType.PARAMETER_PROBLEM,
            ParameterProblemCode.POINTER,
            bytes([pointer, 0, 0, 0]),
            quoted,
        )

    # -- readers of the type-specific bytes ----------------------------------------------

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    @property
    def echo_identifier(self) -> int:
        """Echo request/reply (and timestamp, information): the identifier."""
        return int.from_bytes(self.rest[0:2], "big")

    @property
    def echo_sequence(self) -> int:
        """Echo request/reply (and timestamp, information): the sequence number."""
        return int.from_bytes(self.rest[2:4], "big")

    @property
    def next_hop_mtu(self) -> int:
        """Type 3 code 4: the next-hop MTU (RFC 1191 4); 0 from a router older than it."""
        return int.from_bytes(self.rest[2:4], "big")

    @property
    def pointer(self) -> int:
        """Type 12: the octet where the problem was found."""
        return self.rest[0]

    @property
    def gateway(self) -> IPv4Address:
        """Type 5: the gateway to send to instead."""
        return IPv4Address(self.rest)

    # -- codec ----------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, *, verify_checksum: bool = True) -> IcmpMessage:
        """``data`` is the IP payload; the checksum covers all of it (RFC 792)."""
        if len(data) < HEADER_LENGTH:
            raise WireError("icmp.truncated", f"{len(data)} bytes, header needs 8")
        icmp_type, code, checksum = _HEADER.unpack_from(data)
        if verify_checksum and internet_checksum(bytes(data)) != 0:
            raise WireError("icmp.bad_checksum", f"checksum {checksum:#06x}")
        return cls(icmp_type, code, bytes(data[4:8]), bytes(data[8:]), checksum)

    def emit(self) -> bytes:
        checksum = self.checksum
        if checksum is None:
            unsummed = _HEADER.pack(self.type, self.code, 0) + self.rest + self.payload
            checksum = internet_checksum(unsummed)
        return _HEADER.pack(self.type, self.code, checksum) + self.rest + self.payload


def _pack_pair(high: int, low: int) -> bytes:
    check_uint("first 16-bit field", high, 16)
    check_uint("second 16-bit field", low, 16)
    return struct.pack("!HH", high, low)
