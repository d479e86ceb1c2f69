"""The internet checksum (RFC 1071) and the IPv4 pseudo-header of UDP and TCP."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of ``data`` read as big-endian words.

    An odd final byte is padded with zero (RFC 1071 4.1). The result is 0 only when
    every word is zero; otherwise it lies in 1..0xFFFF, as end-around carry gives.
    Computed as the whole buffer modulo 0xFFFF, since 2**16 == 1 (mod 0xFFFF).
    """
    if len(data) % 2:
        data = data + b"\x00"
    value = int.from_bytes(data, "big")
    if value == 0:
        return 0
    return value % 0xFFFF or 0xFFFF


def internet_checksum(data: bytes) -> int:
    """The one's complement of the one's complement sum (RFC 1071).

    Over a header whose checksum field is zero, this is the value to put in the field;
    over a header carrying its checksum, it is 0 when the checksum is right.
    """
    return ~ones_complement_sum(data) & 0xFFFF


def ipv4_pseudo_header(src: IPv4Address, dst: IPv4Address, protocol: int, length: int) -> bytes:
    """The 12-byte pseudo-header of UDP and TCP over IPv4 (RFC 768, RFC 9293 3.1)."""
    return src.packed + dst.packed + struct.pack("!BBH", 0, protocol, length)


def transport_checksum(src: IPv4Address, dst: IPv4Address, protocol: int, segment: bytes) -> int:
    """The internet checksum of ``segment`` preceded by its IPv4 pseudo-header."""
    return internet_checksum(ipv4_pseudo_header(src, dst, protocol, len(segment)) + segment)
