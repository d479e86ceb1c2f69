"""IPv4 in the reference stack (RFC 791, RFC 1122 3.2.1 and 3.3): what input validation
drops and why, options, fragmentation on send and reassembly on receive."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_NOP, IPOption_RR, defragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from stack.settings import Settings
from stack.timing import SECOND
from tests.stack_link import (
    DUT_IP,
    LINK_BROADCAST_MAC,
    PEER2_IP,
    PEER_IP,
    PEER_MAC,
    SUBNET_BROADCAST,
    Link,
    udp_from_peer,
)

ANY = IPv4Address("0.0.0.0")
PORT = 7


def bound_socket(link: Link, port: int = PORT) -> int:
    sock = link.api.socket("udp")
    link.api.bind(sock, ANY, port)
    return sock


def received(link: Link, sock: int) -> list[bytes]:
    """Every datagram queued on ``sock``, in order."""
    datagrams = []
    while "POLLIN" in link.api.poll(sock, {"POLLIN"}):
        datagrams.append(link.api.recvmsg(sock, 65535, set()).data)
    return datagrams


def fragment_of(
    datagram: Packet, start: int, end: int, *, last: bool | None = None, data: bytes | None = None
) -> Packet:
    """The fragment carrying bytes [start, end) of ``datagram``'s IP payload; MF is set
    unless the piece reaches the end (or ``last`` says otherwise). ``data`` replaces the
    bytes, for overlaps that disagree."""
    payload = bytes(datagram[IP].payload)
    piece = payload[start:end] if data is None else data
    if last is None:
        last = end >= len(payload)
    header = datagram[IP]
    return IP(
        src=header.src, dst=header.dst, id=header.id, proto=header.proto, ttl=header.ttl,
        flags=0 if last else "MF", frag=start // 8,
    ) / Raw(piece)


def udp_datagram(payload: bytes, identification: int = 0x4242) -> Packet:
    # Built whole first so that scapy computes the UDP checksum over the entire payload.
    return IP(bytes(udp_from_peer(payload, dport=PORT, id=identification)))


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (udp_from_peer(version=5), "ipv4.bad_version"),  # RFC 1122 3.2.1.1
        (udp_from_peer(ihl=4), "ipv4.bad_ihl"),
        (udp_from_peer(chksum=0x1234), "ipv4.bad_checksum"),  # RFC 1122 3.2.1.2
        (udp_from_peer(len=19), "ipv4.bad_total_length"),
        (udp_from_peer(len=200), "ipv4.truncated"),
    ],
    ids=["version", "ihl", "checksum", "total-length-below-header", "total-length-past-end"],
)
def test_malformed_header_is_dropped_silently(packet: Packet, reason: str) -> None:
    link = Link()
    sock = bound_socket(link)
    link.inject(packet)
    assert link.last_drop() == reason
    link.sent_none()
    assert received(link, sock) == []


def test_ethernet_padding_after_total_length_is_ignored() -> None:
    link = Link()
    sock = bound_socket(link)
    padded = bytes(udp_from_peer(b"x", dport=PORT)) + bytes(20)
    link.inject(Ether(src=PEER_MAC, dst="02:00:00:00:00:01", type=0x0800) / Raw(padded))
    assert received(link, sock) == [b"x"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("255.255.255.255", "ipv4.broadcast_source"),
        (SUBNET_BROADCAST, "ipv4.broadcast_source"),
        ("224.0.0.1", "ipv4.multicast_source"),
        ("0.0.0.0", "ipv4.zero_source"),
        ("0.1.2.3", "ipv4.zero_source"),
        ("127.0.0.1", "ipv4.loopback_source"),
        ("240.0.0.1", "ipv4.reserved_source"),
        (DUT_IP, "ipv4.own_source"),
    ],
)
def test_martian_source_is_dropped_without_an_icmp_error(source: str, reason: str) -> None:
    """RFC 1122 3.2.1.3: MUST silently discard a datagram whose source is not one host;
    the closed port would otherwise draw a Port Unreachable."""
    link = Link()
    link.inject(udp_from_peer(src=source, dport=9))
    assert link.last_drop() == reason
    link.sent_none()


def test_datagram_for_another_host_is_dropped() -> None:
    """RFC 1122 3.3.1.1: a host that is not a router silently discards it."""
    link = Link()
    link.inject(udp_from_peer(dst=PEER2_IP, dport=9))
    assert link.host.drops.recent[-1].reason == "ipv4.not_for_us"
    assert link.host.drops.recent[-1].detail == PEER2_IP
    link.sent_none()


def test_multicast_group_not_joined_is_dropped() -> None:
    link = Link()
    # No group is joined, so the group's MAC address is not listened to either.
    link.inject(udp_from_peer(dst="224.0.0.9", dport=9), dst_mac="01:00:5e:00:00:09")
    assert link.last_drop() == "ethernet.not_for_us"
    link.inject(udp_from_peer(dst="224.0.0.9", dport=9), dst_mac=LINK_BROADCAST_MAC)
    assert link.last_drop() == "ipv4.multicast_not_joined"
    link.sent_none()


def test_frame_for_another_mac_is_dropped() -> None:
    link = Link()
    link.inject(udp_from_peer(dport=9), dst_mac="02:00:00:00:00:99")
    assert link.last_drop() == "ethernet.not_for_us"
    link.sent_none()


def test_unicast_datagram_in_link_broadcast_is_dropped() -> None:
    """RFC 1122 3.3.6: SHOULD discard a link-layer broadcast that carries a datagram for
    a unicast IP address."""
    link = Link()
    sock = bound_socket(link)
    link.inject(udp_from_peer(dport=PORT), dst_mac=LINK_BROADCAST_MAC)
    assert link.last_drop() == "ipv4.unicast_in_link_broadcast"
    assert received(link, sock) == []


def test_broadcast_datagram_in_link_broadcast_is_delivered() -> None:
    link = Link()
    sock = bound_socket(link)
    link.inject(udp_from_peer(b"all", dst=SUBNET_BROADCAST, dport=PORT),
                dst_mac=LINK_BROADCAST_MAC)
    assert received(link, sock) == [b"all"]


def test_unknown_ethertype_is_dropped() -> None:
    link = Link()
    link.inject(Ether(src=PEER_MAC, dst="02:00:00:00:00:01", type=0x86DD) / Raw(bytes(40)))
    assert link.last_drop() == "ethernet.unknown_ethertype"


# --- options ------------------------------------------------------------------------------

def test_datagram_with_options_is_delivered() -> None:
    """RFC 1122 3.2.1.8: options MUST be accepted; those not understood are ignored."""
    link = Link()
    sock = bound_socket(link)
    link.inject(udp_from_peer(b"rr", dport=PORT, options=[IPOption_RR(routers=["192.0.2.9"])]))
    link.inject(udp_from_peer(b"nop", dport=PORT, options=[IPOption_NOP()] * 4))
    link.inject(udp_from_peer(b"unknown", dport=PORT, options=[b"\x9e\x04\x00\x00"]))
    assert received(link, sock) == [b"rr", b"nop", b"unknown"]


def test_malformed_option_draws_parameter_problem() -> None:
    """RFC 1122 3.2.2.5: SHOULD send Parameter Problem for a bad option."""
    link = Link()
    bad = udp_from_peer(b"x", dport=PORT, options=[b"\x07\x09\x04\x00"])  # length 9 > 4 left
    link.inject(bad)
    assert "ipv4.bad_option_length" in link.drops()
    error = link.sent_one()
    assert (error[ICMP].type, error[ICMP].code, error[ICMP].ptr) == (12, 0, 20)
    assert error[IP].dst == PEER_IP
    assert bytes(error[ICMP].payload)[:28] == bytes(bad)[:28]


# --- fragmentation on send ----------------------------------------------------------------

def test_datagram_above_the_mtu_is_fragmented_when_df_is_clear() -> None:
    """RFC 791 3.2: fragments carry multiples of 8 bytes except the last, fit the MTU,
    and reassemble (by scapy) into the datagram that was sent."""
    link = Link()
    sock = link.api.socket("udp")
    link.api.setsockopt(sock, "IP_MTU_DISCOVER", "IP_PMTUDISC_DONT", link.now)
    payload = bytes(range(256)) * 12  # 3072 bytes: 3080 of UDP, three fragments at 1500
    link.api.sendto(sock, payload, (IPv4Address(PEER_IP), 9), set(), link.now)
    frames = link.sent()
    fragments = [frame[IP] for frame in frames]
    assert [len(fragment) for fragment in fragments] == [1500, 1500, 20 + 3080 - 2 * 1480]
    assert [fragment.frag * 8 for fragment in fragments] == [0, 1480, 2960]
    assert [str(fragment.flags) for fragment in fragments] == ["MF", "MF", ""]
    assert len({fragment.id for fragment in fragments}) == 1
    whole = defragment(fragments)
    assert len(whole) == 1
    datagram = IP(bytes(whole[0]))
    assert datagram[UDP].dport == 9
    assert bytes(datagram[UDP].payload) == payload
    # The UDP checksum covers the whole datagram: scapy computes the same one.
    recomputed = datagram.copy()
    del recomputed[UDP].chksum
    assert IP(bytes(recomputed))[UDP].chksum == datagram[UDP].chksum


def test_each_datagram_gets_its_own_identification() -> None:
    link = Link()
    sock = link.api.socket("udp")
    for _ in range(3):
        link.api.sendto(sock, b"x", (IPv4Address(PEER_IP), 9), set(), link.now)
    identifications = [frame[IP].id for frame in link.sent()]
    assert len(set(identifications)) == 3


# --- reassembly ---------------------------------------------------------------------------

def test_fragments_in_order_are_reassembled() -> None:
    link = Link()
    sock = bound_socket(link)
    datagram = udp_datagram(bytes(range(200)))  # 208 bytes of UDP
    for start, end in ((0, 64), (64, 128), (128, 208)):
        link.inject(fragment_of(datagram, start, end))
    assert received(link, sock) == [bytes(range(200))]
    assert link.host.reassembler.pending() == 0
    assert link.host.next_timer() is None


def test_fragments_out_of_order_are_reassembled() -> None:
    link = Link()
    sock = bound_socket(link)
    datagram = udp_datagram(bytes(range(200)))
    for start, end in ((128, 208), (0, 64), (64, 128)):
        link.inject(fragment_of(datagram, start, end))
    assert received(link, sock) == [bytes(range(200))]


def test_duplicate_fragment_is_dropped_and_reassembly_goes_on() -> None:
    link = Link()
    sock = bound_socket(link)
    datagram = udp_datagram(bytes(range(200)))
    link.inject(fragment_of(datagram, 0, 64))
    link.inject(fragment_of(datagram, 0, 64))
    assert link.host.drops.recent[-1].reason == "ipv4.fragment_duplicate"
    link.inject(fragment_of(datagram, 64, 208))
    assert received(link, sock) == [bytes(range(200))]


def test_overlapping_fragment_discards_the_whole_datagram_by_default() -> None:
    """Linux (and RFC 5722 for IPv6): overlaps discard the datagram; the rest of it then
    starts a new reassembly that never completes."""
    link = Link()
    sock = bound_socket(link)
    datagram = udp_datagram(bytes(range(200)))
    link.inject(fragment_of(datagram, 0, 64))
    link.inject(fragment_of(datagram, 56, 128))
    assert link.last_drop() == "ipv4.fragment_overlap"
    assert link.host.reassembler.pending() == 0
    link.inject(fragment_of(datagram, 128, 208))
    assert received(link, sock) == []
    assert link.host.reassembler.pending() == 1


def test_overlapping_fragment_overwrites_with_last_wins() -> None:
    """RFC 791's reassembly algorithm: the data that arrives later is kept."""
    link = Link(Settings(fragment_overlap="last_wins"))
    sock = bound_socket(link)
    payload = bytes(200)
    datagram = udp_datagram(payload)
    udp_bytes = bytes(datagram[IP].payload)
    link.inject(fragment_of(datagram, 0, 64))
    link.inject(fragment_of(datagram, 128, 208))
    # Bytes 56..127: overlaps the first fragment by 8 bytes and fills the gap.
    link.inject(fragment_of(datagram, 56, 128, data=udp_bytes[56:128]))
    assert "ipv4.fragment_overlap" not in link.drops()
    assert received(link, sock) == [payload]


def test_last_wins_keeps_the_later_copy_of_overlapping_bytes() -> None:
    link = Link(Settings(fragment_overlap="last_wins"))
    sock = bound_socket(link)
    # UDP checksum 0 (none), so that the rewritten bytes still make a valid datagram.
    datagram = IP(bytes(IP(src=PEER_IP, dst=DUT_IP, id=5) / UDP(sport=5000, dport=PORT, chksum=0)
                        / Raw(bytes(200))))
    link.inject(fragment_of(datagram, 0, 64))
    link.inject(fragment_of(datagram, 56, 128, data=b"\xaa" * 72))
    link.inject(fragment_of(datagram, 128, 208))
    # UDP bytes 56..127 are payload bytes 48..119: the later fragment's copy wins.
    assert received(link, sock) == [bytes(48) + b"\xaa" * 72 + bytes(80)]


def test_incomplete_datagram_times_out_with_time_exceeded_code_1() -> None:
    """RFC 1122 3.2.1.4 / RFC 792: when fragment zero came, the timeout draws Time
    Exceeded, code 1, quoting fragment zero; the timer runs from the first arrival."""
    link = Link()
    bound_socket(link)
    datagram = udp_datagram(bytes(range(200)))
    first_arrival = link.now
    first = fragment_of(datagram, 0, 64)
    link.inject(first)
    assert link.host.next_timer() == first_arrival + 30 * SECOND
    link.advance(10 * SECOND)
    link.inject(fragment_of(datagram, 128, 208))
    assert link.host.next_timer() == first_arrival + 30 * SECOND

    link.advance_to(first_arrival + 30 * SECOND - 1)
    link.sent_none()
    link.advance_to(first_arrival + 30 * SECOND)
    error = link.sent_one()
    assert (error[IP].src, error[IP].dst) == (DUT_IP, PEER_IP)
    assert (error[ICMP].type, error[ICMP].code) == (11, 1)
    quoted = bytes(error[ICMP].payload)
    assert quoted == bytes(first)  # 20 + 64 bytes: the whole of fragment zero
    assert "ipv4.reassembly_timeout" in link.drops()
    assert link.host.reassembler.pending() == 0
    # Only the peer's ARP entry, learned to send the error, is left to time out.
    assert link.host.next_timer() == first_arrival + 30 * SECOND + 60 * SECOND


def test_timeout_without_fragment_zero_sends_nothing() -> None:
    link = Link()
    datagram = udp_datagram(bytes(range(200)))
    link.inject(fragment_of(datagram, 64, 128))
    link.advance(30 * SECOND)
    link.sent_none()
    assert link.last_drop() == "ipv4.reassembly_timeout"
    assert link.host.reassembler.pending() == 0


def test_reassembly_memory_limit_refuses_new_datagrams() -> None:
    link = Link(Settings(reassembly_memory=2000))
    sock = bound_socket(link)
    first = udp_datagram(bytes(1600), identification=1)
    second = udp_datagram(bytes(1600), identification=2)
    link.inject(fragment_of(first, 0, 1480))
    link.inject(fragment_of(second, 0, 1480))
    assert link.last_drop() == "ipv4.reassembly_memory_full"
    assert link.host.reassembler.pending() == 1
    # The datagram already under way still completes.
    link.inject(fragment_of(first, 1480, 1608))
    assert received(link, sock) == [bytes(1600)]


def test_reassembly_memory_limit_counts_the_buffer_a_far_fragment_needs() -> None:
    """Found by `conformance fuzz`: a mutated fragment offset made an 8-octet fragment
    take a 16 KB buffer while the limit counted 8 octets, so reassemblies could hold
    many times the limit. A fragment's cost is the buffer up to its end, for a new
    datagram and for one under way."""
    link = Link(Settings(reassembly_memory=20_000))
    far = 2000  # in units of 8 octets: 16,000 octets in
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=1, proto=17, flags="MF", frag=far)
                / Raw(bytes(8)))
    assert link.host.reassembler.memory() == 16_008
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=2, proto=17, flags="MF", frag=far)
                / Raw(bytes(8)))
    assert link.last_drop() == "ipv4.reassembly_memory_full"
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=3, proto=17, flags="MF", frag=0) / Raw(bytes(8)))
    assert link.host.reassembler.pending() == 2
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=3, proto=17, flags="MF", frag=1000)
                / Raw(bytes(8)))
    assert link.last_drop() == "ipv4.reassembly_memory_full"
    assert link.host.reassembler.memory() <= 20_000


def test_fragment_not_multiple_of_8_is_dropped() -> None:
    link = Link()
    datagram = udp_datagram(bytes(range(200)))
    link.inject(fragment_of(datagram, 0, 60))
    assert link.last_drop() == "ipv4.fragment_not_multiple_of_8"
    assert link.host.reassembler.pending() == 0


def test_fragment_past_65535_is_dropped() -> None:
    link = Link()
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=9, proto=17, frag=8189) / Raw(bytes(64)))
    assert link.last_drop() == "ipv4.fragment_too_long"


def test_fragmented_echo_request_is_answered_after_reassembly() -> None:
    link = Link()
    request = IP(bytes(IP(src=PEER_IP, dst=DUT_IP, id=77) / ICMP(id=1, seq=2) / Raw(bytes(92))))
    link.inject(fragment_of(request, 48, 100))
    link.inject(fragment_of(request, 0, 48))
    reply = link.sent_one()
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 1, 2)
    assert bytes(reply[ICMP].payload) == bytes(92)
