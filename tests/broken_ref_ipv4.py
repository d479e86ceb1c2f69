"""The reference stack broken on purpose in its IPv4 layer, one behaviour at a time.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`)
and replaces one piece of it with a version that breaks one requirement of IPv4 input,
reassembly, fragmentation or path MTU discovery. The cases that check that requirement
must then fail (tests/test_ipv4_cases_fail_on_broken_ref.py).

Most input patches wrap `Host._receive_ipv4`: they either rewrite the one header field
whose check they defeat (recomputing the header checksum, which the rewrite would
otherwise spoil) or drop, before the stack sees it, a datagram it must accept.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import stack.host as host_module
from stack.host import Host
from stack.ipv4 import Reassembled, Reassembler, bad_source_reason
from stack.timing import Nanoseconds
from stack.wire.checksum import internet_checksum
from stack.wire.errors import WireError
from stack.wire.ipv4 import IpProtocol, Ipv4Header, Ipv4OptionKind, Ipv4Packet

Receive = Callable[..., None]


# ---- helpers ---------------------------------------------------------------------------


def _wrap_receive(host: Host, wrapper: Callable[[Receive, bytes, Nanoseconds, bool], None]
                  ) -> None:
    original: Receive = host._receive_ipv4

    def receive(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        wrapper(original, payload, now, link_broadcast)

    host._receive_ipv4 = receive  # type: ignore[method-assign]


def _header_length(payload: bytes) -> int:
    return (payload[0] & 0x0F) * 4


def _resummed(raw: bytearray, header_length: int) -> bytes:
    """`raw` with its header checksum computed again over `header_length` octets."""
    raw[10:12] = b"\0\0"
    struct.pack_into("!H", raw, 10, internet_checksum(bytes(raw[:header_length])))
    return bytes(raw)


def _checksum_holds(payload: bytes, header_length: int) -> bool:
    return len(payload) >= header_length and internet_checksum(payload[:header_length]) == 0


def _parsed(payload: bytes) -> Ipv4Packet | None:
    try:
        return Ipv4Packet.parse(payload)
    except WireError:
        return None


def _dropping(host: Host, reason: str, drop: Callable[[Ipv4Packet], bool]) -> None:
    """Drop, before the stack sees it, every well-formed datagram `drop` picks."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        packet = _parsed(payload)
        if packet is not None and drop(packet):
            host.drops.record(now, reason)
            return
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def _option_kinds(packet: Ipv4Packet) -> set[int]:
    try:
        return {option.kind for option in packet.header.parsed_options()}
    except WireError:
        return set()


# ---- IPv4 input (RFC 1122 3.2.1) -------------------------------------------------------


def accept_any_version(host: Host) -> None:
    """A datagram is taken whatever its version number, as if it said 4 (breaks RFC 1122
    3.2.1.1: a version other than 4 MUST be silently discarded)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        length = _header_length(payload) if payload else 0
        if payload and payload[0] >> 4 != 4 and _checksum_holds(payload, length):
            raw = bytearray(payload)
            raw[0] = 0x40 | (raw[0] & 0x0F)
            payload = _resummed(raw, length)
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def accept_bad_header_checksum(host: Host) -> None:
    """The header checksum is never verified (breaks RFC 1122 3.2.1.2)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        length = _header_length(payload) if payload else 0
        if 20 <= length <= len(payload):
            payload = _resummed(bytearray(payload), length)
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def accept_short_header_length(host: Host) -> None:
    """A header length under five words is read as the 20 octets every header has
    (breaks RFC 1122 3.2.1a: such a header is malformed and the datagram discarded)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        if payload and _header_length(payload) < 20 and _checksum_holds(payload, 20):
            raw = bytearray(payload)
            raw[0] = (raw[0] & 0xF0) | 5
            payload = _resummed(raw, 20)
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def accept_total_length_beyond_the_frame(host: Host) -> None:
    """A total length that claims more octets than arrived is cut to what arrived (breaks
    RFC 1122 3.2.1a: a datagram shorter than its total length is discarded)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        length = _header_length(payload) if payload else 0
        if (20 <= length <= len(payload) and _checksum_holds(payload, length)
                and int.from_bytes(payload[2:4], "big") > len(payload)):
            raw = bytearray(payload)
            raw[2:4] = len(payload).to_bytes(2, "big")
            payload = _resummed(raw, length)
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def padding_is_data(host: Host) -> None:
    """Octets after the total length (link-layer padding) are kept as data: the datagram
    runs to the end of the frame (breaks RFC 1122 3.2.1a, RFC 791's total length)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        length = _header_length(payload) if payload else 0
        if (20 <= length <= len(payload) and _checksum_holds(payload, length)
                and length <= int.from_bytes(payload[2:4], "big") < len(payload)):
            raw = bytearray(payload)
            raw[2:4] = len(payload).to_bytes(2, "big")
            payload = _resummed(raw, length)
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


KNOWN_OPTIONS = {int(kind) for kind in Ipv4OptionKind}


def drop_unknown_options(host: Host) -> None:
    """A datagram carrying an option of a type the stack does not know is dropped (breaks
    RFC 1122 3.2.1.8c: unknown options MUST be ignored)."""
    _dropping(host, "broken.unknown_option",
              lambda packet: bool(_option_kinds(packet) - KNOWN_OPTIONS))


def drop_stream_identifier(host: Host) -> None:
    """A datagram carrying the Stream Identifier option is dropped (breaks RFC 1122
    3.2.1.8d: it MUST be silently ignored)."""
    _dropping(host, "broken.stream_identifier",
              lambda packet: Ipv4OptionKind.STREAM_ID in _option_kinds(packet))


def drop_source_routed(host: Host) -> None:
    """A datagram carrying a source route option is dropped, even when the route is
    complete and ends here (breaks RFC 1122 3.2.1.8e; Linux's accept_source_route = 0)."""
    routes = {Ipv4OptionKind.LOOSE_SOURCE_ROUTE, Ipv4OptionKind.STRICT_SOURCE_ROUTE}
    _dropping(host, "broken.source_route", lambda packet: bool(_option_kinds(packet) & routes))


def malformed_options_dropped_without_parameter_problem(host: Host) -> None:
    """A datagram whose options are malformed is dropped without a Parameter Problem
    (breaks RFC 1122 3.2.2.5, a SHOULD)."""

    def wrapper(original: Receive, payload: bytes, now: Nanoseconds, broadcast: bool) -> None:
        packet = _parsed(payload)
        if packet is not None:
            try:
                packet.header.parsed_options()
            except WireError as error:
                host.drops.record(now, error.reason, "broken: no parameter problem")
                return
        original(payload, now, link_broadcast=broadcast)

    _wrap_receive(host, wrapper)


def discard_low_ttl(host: Host) -> None:
    """A datagram that arrives with TTL 0 or 1 is discarded, as a router would (breaks
    RFC 1122 3.2.1.7b: a host MUST NOT discard it for that)."""
    _dropping(host, "broken.low_ttl", lambda packet: packet.header.ttl < 2)


def accept_invalid_sources(host: Host) -> None:
    """Source addresses are not checked: a datagram from 0.0.0.0, loopback, a broadcast or
    a multicast address is taken like any other (breaks RFC 1122 3.2.1.3b)."""
    original = host._receive_ipv4

    def receive(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        setattr(host_module, "bad_source_reason", lambda *args: None)  # noqa: B010
        try:
            original(payload, now, link_broadcast=link_broadcast)
        finally:
            setattr(host_module, "bad_source_reason", bad_source_reason)  # noqa: B010

    host._receive_ipv4 = receive  # type: ignore[method-assign]


def accept_datagrams_for_other_hosts(host: Host) -> None:
    """A datagram sent to the host's MAC address is taken as its own whatever its
    destination address (breaks RFC 1122 3.2.1.3a: it MUST be silently discarded)."""
    original = host._receive_ipv4

    def receive(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        packet = _parsed(payload)
        own = host.address
        if packet is not None and not host.is_broadcast(packet.header.dst):
            host.address = packet.header.dst
        try:
            original(payload, now, link_broadcast=link_broadcast)
        finally:
            host.address = own

    host._receive_ipv4 = receive  # type: ignore[method-assign]


def forward_datagrams_for_other_hosts(host: Host) -> None:
    """A datagram for another unicast address is forwarded to it, as a router would (an
    ARP request for it first), though not delivered (breaks RFC 1122 3.2.1.3a: a host
    MUST silently discard it)."""
    original = host._receive_ipv4

    def receive(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        packet = _parsed(payload)
        destination = packet.header.dst if packet is not None else None
        if (packet is not None and destination is not None and destination != host.address
                and not host.is_broadcast(destination) and not destination.is_multicast):
            forwarded = replace(packet.header, ttl=max(packet.header.ttl - 1, 1))
            host._output(Ipv4Packet(forwarded, packet.payload), now)
        original(payload, now, link_broadcast=link_broadcast)

    host._receive_ipv4 = receive  # type: ignore[method-assign]


# ---- reassembly (RFC 1122 3.2.1.4, 3.3.2) ----------------------------------------------


def _wrap_add(host: Host,
              wrapper: Callable[[Callable[[Ipv4Packet, Nanoseconds], Reassembled],
                                 Ipv4Packet, Nanoseconds], Reassembled]) -> None:
    original = host.reassembler.add

    def add(packet: Ipv4Packet, now: Nanoseconds) -> Reassembled:
        return wrapper(original, packet, now)

    host.reassembler.add = add  # type: ignore[method-assign]


def _key(header: Ipv4Header) -> tuple[IPv4Address, IPv4Address, int, int]:
    return (header.src, header.dst, header.protocol, header.identification)


def never_reassemble(host: Host) -> None:
    """Fragments are dropped: nothing is ever reassembled (breaks RFC 1122 3.2.1.4, 3.3.2)."""
    _wrap_add(host, lambda original, packet, now: Reassembled(drop_reason="broken.fragment"))


def reassemble_in_order_only(host: Host) -> None:
    """A fragment that does not continue what has arrived of its datagram is dropped, so
    fragments that come out of order never make a datagram (breaks RFC 1122 3.2.1.4)."""

    def add(original: Callable[[Ipv4Packet, Nanoseconds], Reassembled], packet: Ipv4Packet,
            now: Nanoseconds) -> Reassembled:
        partial = host.reassembler._partials.get(_key(packet.header))
        received = 0 if partial is None else max(end for start, end in partial.pieces)
        if packet.header.fragment_offset != received:
            return Reassembled(drop_reason="broken.fragment_out_of_order")
        return original(packet, now)

    _wrap_add(host, add)


def reassembly_ignores_identification(host: Host) -> None:
    """Fragments are put together by source, destination and protocol only, whatever
    their identification, so interleaved datagrams get mixed (breaks RFC 1122 3.2.1.4)."""

    def add(original: Callable[[Ipv4Packet, Nanoseconds], Reassembled], packet: Ipv4Packet,
            now: Nanoseconds) -> Reassembled:
        header = replace(packet.header, identification=0, checksum=None)
        return original(Ipv4Packet(header, packet.payload), now)

    _wrap_add(host, add)


EMTU_R_MINIMUM = 576


def reassemble_576_octets_at_most(host: Host) -> None:
    """The largest datagram reassembled is 576 octets, the least RFC 1122 allows, below the
    link MTU (breaks RFC 1122 3.3.2, a SHOULD: EMTU_R at least the MTU of the link)."""

    def add(original: Callable[[Ipv4Packet, Nanoseconds], Reassembled], packet: Ipv4Packet,
            now: Nanoseconds) -> Reassembled:
        header = packet.header
        if header.header_length + header.fragment_offset + len(packet.payload) > EMTU_R_MINIMUM:
            host.reassembler._partials.pop(_key(header), None)
            return Reassembled(drop_reason="broken.datagram_above_emtu_r")
        return original(packet, now)

    _wrap_add(host, add)


def deliver_incomplete_datagrams(host: Host) -> None:
    """Once the first and the last fragment are in, the datagram is delivered, any hole
    left filled with zeros (breaks RFC 1122 3.2.1.4: nothing until it is complete)."""

    def add(original: Callable[[Ipv4Packet, Nanoseconds], Reassembled], packet: Ipv4Packet,
            now: Nanoseconds) -> Reassembled:
        outcome = original(packet, now)
        key = _key(packet.header)
        partial = host.reassembler._partials.get(key)
        if outcome.packet is None and partial is not None and partial.total_length is not None \
                and partial.first_header is not None:
            del host.reassembler._partials[key]
            return Reassembled(packet=Reassembler._join(partial))
        return outcome

    _wrap_add(host, add)


def keep_fragments_after_the_timeout(host: Host) -> None:
    """When reassembly times out, Time Exceeded goes out but the fragments are kept, so
    late fragments still complete the datagram (breaks RFC 1122 3.3.2: an incomplete
    datagram MUST be discarded when its timer runs out)."""
    reassembler = host.reassembler
    original = reassembler.poll

    def poll(now: Nanoseconds) -> list[Any]:
        partials = dict(reassembler._partials)
        expired = original(now)
        for gone in expired:
            partial = partials[gone.key]
            partial.first_arrival = now  # kept, its timer started again
            reassembler._partials[gone.key] = partial
        return expired

    reassembler.poll = poll  # type: ignore[method-assign]


# ---- fragmentation and identification on send (RFC 1122 3.2.1.5, 3.3.3) ---------------


def send_oversize_datagrams_whole(host: Host) -> None:
    """A datagram larger than the link MTU with DF clear goes out whole, unfragmented
    (breaks RFC 1122 3.3.3: fragment it or refuse it, never send it as is)."""
    original = host.send_datagram

    def send_datagram(now: Nanoseconds, destination: IPv4Address, payload: bytes, *,
                      ttl: int, tos: int, dont_fragment: bool, fragment_size: int,
                      protocol: int = IpProtocol.UDP, options: bytes = b"") -> None:
        if dont_fragment:
            original(now, destination, payload, ttl=ttl, tos=tos, dont_fragment=True,
                     fragment_size=fragment_size, protocol=protocol, options=options)
            return
        host._identification = (host._identification + 1) & 0xFFFF
        header = Ipv4Header(src=host.address, dst=destination, protocol=protocol, ttl=ttl,
                            tos=tos, identification=host._identification, options=options)
        host._output(Ipv4Packet(header, payload), now)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


def one_identification_for_all(host: Host) -> None:
    """Every datagram carries Identification 0 (breaks RFC 1122 3.2.1.5 / RFC 791: the
    fragments of two datagrams to one destination could be mixed)."""
    original = host.send_datagram

    def send_datagram(*args: Any, **kwargs: Any) -> None:
        host._identification = 0xFFFF  # send_datagram takes the next: 0
        original(*args, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


# ---- path MTU (RFC 1191) ---------------------------------------------------------------


def ignore_datagram_too_big_without_next_hop_mtu(host: Host) -> None:
    """A Datagram Too Big whose Next-Hop MTU is zero (an old router's) leaves the path MTU
    alone (breaks RFC 1191 3 and 5)."""
    pmtu = host.pmtu
    original = pmtu.datagram_too_big

    def datagram_too_big(destination: IPv4Address, next_hop_mtu: int, quoted_length: int,
                         now: Nanoseconds) -> int:
        if next_hop_mtu == 0:
            return pmtu.get(destination, now)
        return original(destination, next_hop_mtu, quoted_length, now)

    pmtu.datagram_too_big = datagram_too_big  # type: ignore[method-assign]


def _pmtudisc_dont_taken_as(host: Host, mode: str) -> None:
    """IP_MTU_DISCOVER = IP_PMTUDISC_DONT is accepted and taken as `mode`."""
    udp = host.udp
    original = udp.setsockopt

    def setsockopt(sock: Any, name: str, value: int | str, now: Nanoseconds) -> None:
        if name == "IP_MTU_DISCOVER" and value == "IP_PMTUDISC_DONT":
            value = mode
        original(sock, name, value, now)

    udp.setsockopt = setsockopt  # type: ignore[method-assign]


def pmtudisc_dont_is_ignored(host: Host) -> None:
    """IP_MTU_DISCOVER = IP_PMTUDISC_DONT is accepted and taken as IP_PMTUDISC_WANT:
    datagrams keep DF (breaks the Linux API, ip(7))."""
    _pmtudisc_dont_taken_as(host, "IP_PMTUDISC_WANT")


def pmtudisc_dont_is_taken_as_do(host: Host) -> None:
    """IP_MTU_DISCOVER = IP_PMTUDISC_DONT is accepted and taken as IP_PMTUDISC_DO: an
    oversize datagram is refused (EMSGSIZE, allowed by RFC 1122 3.3.3a) and every datagram
    sent carries DF (breaks the Linux API, ip(7))."""
    _pmtudisc_dont_taken_as(host, "IP_PMTUDISC_DO")
