"""ARP for IPv4 over Ethernet (RFC 826); other hardware or protocol types are refused."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from stack.wire._fields import check_uint
from stack.wire.errors import WireError
from stack.wire.ethernet import EtherType, MacAddress

PACKET_LENGTH = 28
HARDWARE_ETHERNET = 1

_HEADER = struct.Struct("!HHBBH")


class ArpOp(IntEnum):
    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet. ``op`` is any 16-bit value; ``ArpOp`` names the two
    that RFC 826 defines, and the ARP layer decides what to do with the others."""

    op: int
    sender_mac: MacAddress
    sender_ip: IPv4Address
    target_mac: MacAddress
    target_ip: IPv4Address

    def __post_init__(self) -> None:
        check_uint("op", self.op, 16)

    @classmethod
    def parse(cls, data: bytes) -> ArpPacket:
        """Read the first 28 bytes; anything after them (Ethernet padding) is ignored."""
        if len(data) < _HEADER.size:
            raise WireError("arp.truncated", f"{len(data)} bytes, need {PACKET_LENGTH}")
        hardware, protocol, hardware_length, protocol_length, op = _HEADER.unpack_from(data)
        if hardware != HARDWARE_ETHERNET or hardware_length != 6:
            raise WireError(
                "arp.unsupported_hardware", f"type {hardware}, length {hardware_length}"
            )
        if protocol != EtherType.IPV4 or protocol_length != 4:
            raise WireError(
                "arp.unsupported_protocol", f"type {protocol:#06x}, length {protocol_length}"
            )
        if len(data) < PACKET_LENGTH:
            raise WireError("arp.truncated", f"{len(data)} bytes, need {PACKET_LENGTH}")
        return cls(
            op=op,
            sender_mac=MacAddress(bytes(data[8:14])),
            sender_ip=IPv4Address(bytes(data[14:18])),
            target_mac=MacAddress(bytes(data[18:24])),
            target_ip=IPv4Address(bytes(data[24:28])),
        )

    def emit(self) -> bytes:
        return (
            _HEADER.pack(HARDWARE_ETHERNET, EtherType.IPV4, 6, 4, self.op)
            + self.sender_mac.octets
            + self.sender_ip.packed
            + self.target_mac.octets
            + self.target_ip.packed
        )
