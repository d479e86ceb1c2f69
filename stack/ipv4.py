"""IPv4 for a host (RFC 791, RFC 1122 3.2.1): address classes, fragmentation on send,
reassembly on receive."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Final

from stack.settings import Settings
from stack.timing import Nanoseconds, earliest
from stack.wire.ipv4 import Ipv4Flags, Ipv4Header, Ipv4Packet

LIMITED_BROADCAST: Final = IPv4Address("255.255.255.255")
MAX_DATAGRAM: Final = 65535


def is_broadcast(address: IPv4Address, network: IPv4Network) -> bool:
    return address == LIMITED_BROADCAST or address == network.broadcast_address


def bad_source_reason(source: IPv4Address, own: IPv4Address, network: IPv4Network) -> str | None:
    """RFC 1122 3.2.1.3: a host MUST silently discard a datagram whose source is not a
    single host: broadcast, multicast, "this network", loopback, class E, or ourselves."""
    if is_broadcast(source, network):
        return "ipv4.broadcast_source"
    if source.is_multicast:
        return "ipv4.multicast_source"
    if source.is_unspecified or source in IPv4Network("0.0.0.0/8"):
        return "ipv4.zero_source"
    if source.is_loopback:
        return "ipv4.loopback_source"
    if source in IPv4Network("240.0.0.0/4"):
        return "ipv4.reserved_source"
    if source == own:
        return "ipv4.own_source"
    return None


def fragment(packet: Ipv4Packet, mtu: int) -> list[Ipv4Packet]:
    """RFC 791 3.2: split a datagram whose DF is clear into fragments of at most ``mtu``
    bytes, each carrying a multiple of 8 payload bytes except the last. Options marked
    "copied" go in every fragment, the others in the first only."""
    header = packet.header
    if header.header_length + len(packet.payload) <= mtu:
        return [packet]
    copied_options = b"".join(
        option.encode() for option in header.parsed_options() if option.copied
    )
    copied_options += b"\x00" * (-len(copied_options) % 4)
    fragments = []
    offset = 0
    payload = packet.payload
    while offset < len(payload):
        options = header.options if offset == 0 else copied_options
        room = (mtu - 20 - len(options)) // 8 * 8
        piece = payload[offset : offset + room]
        last = offset + len(piece) >= len(payload)
        flags = header.flags & ~Ipv4Flags.MORE_FRAGMENTS
        if not last or header.more_fragments:
            flags |= Ipv4Flags.MORE_FRAGMENTS
        fragments.append(
            Ipv4Packet(
                replace(
                    header,
                    options=options,
                    flags=flags,
                    fragment_offset=header.fragment_offset + offset,
                    total_length=None,
                    checksum=None,
                ),
                piece,
            )
        )
        offset += len(piece)
    return fragments


ReassemblyKey = tuple[IPv4Address, IPv4Address, int, int]  # src, dst, protocol, id


@dataclass
class _Partial:
    first_arrival: Nanoseconds
    data: bytearray = field(default_factory=bytearray)
    pieces: list[tuple[int, int]] = field(default_factory=list)  # [start, end) received
    first_header: Ipv4Header | None = None  # the fragment at offset 0
    total_length: int | None = None  # known once the last fragment (MF clear) arrives

    def overlap(self, start: int, payload: bytes) -> str | None:
        end = start + len(payload)
        for piece_start, piece_end in self.pieces:
            if (piece_start, piece_end) == (start, end) and self.data[start:end] == payload:
                return "duplicate"
            if piece_start < end and start < piece_end:
                return "overlap"
        return None

    def store(self, start: int, payload: bytes) -> None:
        end = start + len(payload)
        if len(self.data) < end:
            self.data.extend(bytes(end - len(self.data)))
        self.data[start:end] = payload  # RFC 791's algorithm: the later copy wins
        self.pieces.append((start, end))

    def complete(self) -> bool:
        if self.total_length is None or self.first_header is None:
            return False
        covered = 0
        for start, end in sorted(self.pieces):
            if start > covered:
                return False
            covered = max(covered, end)
        return covered >= self.total_length


@dataclass
class Reassembled:
    packet: Ipv4Packet | None = None
    drop_reason: str | None = None


@dataclass
class Expired:
    """A reassembly that timed out. ``first_fragment`` is set when fragment zero came:
    RFC 1122 3.2.1.4 / RFC 792 then call for Time Exceeded, code 1."""

    key: ReassemblyKey
    first_fragment: Ipv4Packet | None


class Reassembler:
    """RFC 791 3.2 / RFC 1122 3.2.1.4: reassembly with a timeout, a memory limit and a
    policy for overlapping fragments."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._partials: dict[ReassemblyKey, _Partial] = {}

    def add(self, packet: Ipv4Packet, now: Nanoseconds) -> Reassembled:
        header = packet.header
        key = (header.src, header.dst, header.protocol, header.identification)
        start, end = header.fragment_offset, header.fragment_offset + len(packet.payload)
        if end > MAX_DATAGRAM - header.header_length:
            self._partials.pop(key, None)
            return Reassembled(drop_reason="ipv4.fragment_too_long")
        if header.more_fragments and len(packet.payload) % 8:
            return Reassembled(drop_reason="ipv4.fragment_not_multiple_of_8")
        partial = self._partials.get(key)
        # The memory limit counts the buffer a fragment needs, up to its end: a fragment
        # far into a datagram costs that much, whatever its own length.
        growth = max(0, end - (len(partial.data) if partial is not None else 0))
        if self.memory() + growth > self.settings.reassembly_memory:
            return Reassembled(drop_reason="ipv4.reassembly_memory_full")
        if partial is None:
            partial = self._partials[key] = _Partial(first_arrival=now)
        if not header.more_fragments:
            if partial.total_length is not None and partial.total_length != end:
                del self._partials[key]
                return Reassembled(drop_reason="ipv4.fragment_conflicting_end")
            partial.total_length = end
        overlap = partial.overlap(start, packet.payload)
        if overlap == "duplicate":
            return Reassembled(drop_reason="ipv4.fragment_duplicate")
        if overlap == "overlap" and self.settings.fragment_overlap == "discard_datagram":
            del self._partials[key]
            return Reassembled(drop_reason="ipv4.fragment_overlap")
        if partial.total_length is not None and max(end, len(partial.data)) > partial.total_length:
            del self._partials[key]
            return Reassembled(drop_reason="ipv4.fragment_past_end")
        partial.store(start, packet.payload)
        if start == 0:
            partial.first_header = header
        if not partial.complete():
            return Reassembled()
        del self._partials[key]
        return Reassembled(packet=self._join(partial))

    def poll(self, now: Nanoseconds) -> list[Expired]:
        expired = []
        for key, partial in list(self._partials.items()):
            if partial.first_arrival + self.settings.reassembly_timeout <= now:
                del self._partials[key]
                first = None
                if partial.first_header is not None:
                    first_end = min(end for start, end in partial.pieces if start == 0)
                    first = Ipv4Packet(
                        replace(partial.first_header, total_length=None, checksum=None),
                        bytes(partial.data[:first_end]),
                    )
                expired.append(Expired(key, first))
        return expired

    def next_timer(self) -> Nanoseconds | None:
        return earliest(
            *(
                partial.first_arrival + self.settings.reassembly_timeout
                for partial in self._partials.values()
            )
        )

    def pending(self) -> int:
        return len(self._partials)

    def memory(self) -> int:
        """Octets the datagrams being reassembled hold (their buffers, gaps included)."""
        return sum(len(partial.data) for partial in self._partials.values())

    @staticmethod
    def _join(partial: _Partial) -> Ipv4Packet:
        assert partial.first_header is not None and partial.total_length is not None
        header = replace(
            partial.first_header,
            flags=partial.first_header.flags & ~Ipv4Flags.MORE_FRAGMENTS,
            fragment_offset=0,
            total_length=None,
            checksum=None,
        )
        return Ipv4Packet(header, bytes(partial.data[: partial.total_length]))
