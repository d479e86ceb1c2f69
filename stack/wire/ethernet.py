"""Ethernet II frames (without FCS, as a TAP device carries them)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from stack.wire._fields import check_size, check_uint
from stack.wire.errors import WireError

HEADER_LENGTH = 14
MIN_FRAME_LENGTH = 60  # without FCS; shorter frames are padded by whoever needs it


class EtherType(IntEnum):
    IPV4 = 0x0800
    ARP = 0x0806


ETHERTYPE_IPV4 = EtherType.IPV4
ETHERTYPE_ARP = EtherType.ARP


@dataclass(frozen=True)
class MacAddress:
    """A 48-bit MAC address; ``str()`` gives the usual ``02:00:00:00:00:01`` form."""

    octets: bytes

    def __post_init__(self) -> None:
        check_size("MAC address", self.octets, 6)

    @classmethod
    def from_string(cls, text: str) -> MacAddress:
        """Read ``"02:00:00:00:00:01"`` (``-`` accepted as a separator too)."""
        parts = text.replace("-", ":").split(":")
        if len(parts) != 6 or not all(1 <= len(part) <= 2 for part in parts):
            raise ValueError(f"not a MAC address: {text!r}")
        return cls(bytes(int(part, 16) for part in parts))

    @property
    def is_broadcast(self) -> bool:
        return self.octets == b"\xff" * 6

    @property
    def is_multicast(self) -> bool:
        """The group bit (broadcast included)."""
        return bool(self.octets[0] & 0x01)

    def __str__(self) -> str:
        return ":".join(f"{octet:02x}" for octet in self.octets)


BROADCAST = MacAddress(b"\xff" * 6)


@dataclass(frozen=True)
class EthernetFrame:
    """An Ethernet II frame. Padding up to 60 bytes, if any, stays in ``payload``:
    only the layer above knows its own length (IPv4 drops it by total length)."""

    dst: MacAddress
    src: MacAddress
    ethertype: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        check_uint("ethertype", self.ethertype, 16)

    @classmethod
    def parse(cls, data: bytes) -> EthernetFrame:
        if len(data) < HEADER_LENGTH:
            raise WireError("ethernet.truncated", f"{len(data)} bytes, header needs 14")
        (ethertype,) = struct.unpack_from("!H", data, 12)
        return cls(
            dst=MacAddress(bytes(data[0:6])),
            src=MacAddress(bytes(data[6:12])),
            ethertype=ethertype,
            payload=bytes(data[HEADER_LENGTH:]),
        )

    def emit(self) -> bytes:
        """The frame as written to a TAP device: no FCS and no padding added."""
        return self.dst.octets + self.src.octets + struct.pack("!H", self.ethertype) + self.payload
