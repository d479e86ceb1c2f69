"""ICMP in the reference stack (RFC 792, RFC 1122 3.2.2): echo, when an error may and may
not be sent, what it quotes, the rate limit on the virtual clock, how received errors
are checked, and redirects."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from scapy.layers.inet import ICMP, IP, IPOption_RR, UDPerror
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from stack.icmp import error_suppression_reason
from stack.settings import Settings
from stack.timing import MILLISECOND, SECOND
from stack.wire.ipv4 import Ipv4Packet
from tests.stack_link import (
    DUT_IP,
    LINK_BROADCAST_MAC,
    OTHER_ROUTER_IP,
    OTHER_ROUTER_MAC,
    PEER2_IP,
    PEER_IP,
    PEER_MAC,
    REMOTE_IP,
    ROUTER_IP,
    ROUTER_MAC,
    SUBNET_BROADCAST,
    Link,
    icmp_error_about,
    udp_from_peer,
)

NETWORK = IPv4Network("192.0.2.0/24")
CLOSED_PORT = 9


def echo_request(data: bytes = b"ping", *, dst: str = DUT_IP, **ip_fields: object) -> Packet:
    return IP(src=PEER_IP, dst=dst, **ip_fields) / ICMP(type=8, id=0x1234, seq=7) / Raw(data)


def suppression(packet: Packet, *, link_broadcast: bool = False) -> str | None:
    """What the stack's rule says about an error for ``packet`` (built with scapy)."""
    return error_suppression_reason(
        Ipv4Packet.parse(bytes(packet)), link_broadcast=link_broadcast, network=NETWORK,
        own=IPv4Address(DUT_IP),
    )


def last_drop_detail(link: Link) -> str:
    return link.host.drops.recent[-1].detail


# --- echo ---------------------------------------------------------------------------------

def test_echo_request_is_answered_with_identical_data() -> None:
    """RFC 1122 3.2.2.6: MUST answer, with the same identifier, sequence and data."""
    link = Link()
    data = bytes(range(256)) * 4
    link.inject(echo_request(data))
    reply = link.sent_one()
    assert (reply[Ether].dst, reply[IP].src, reply[IP].dst) == (PEER_MAC, DUT_IP, PEER_IP)
    assert (reply[ICMP].type, reply[ICMP].code) == (0, 0)
    assert (reply[ICMP].id, reply[ICMP].seq) == (0x1234, 7)
    assert bytes(reply[ICMP].payload) == data
    checked = reply[ICMP].copy()
    del checked.chksum
    assert ICMP(bytes(checked))[ICMP].chksum == reply[ICMP].chksum


@pytest.mark.parametrize("destination", [SUBNET_BROADCAST, "255.255.255.255"])
def test_echo_to_broadcast_is_ignored(destination: str) -> None:
    """RFC 1122 3.2.2.6: MAY be ignored (Linux icmp_echo_ignore_broadcasts = 1)."""
    link = Link()
    link.inject(echo_request(dst=destination), dst_mac=LINK_BROADCAST_MAC)
    link.sent_none()
    assert link.last_drop() == "icmp.echo_to_broadcast_ignored"


def test_echo_reply_returns_record_route_with_this_host_recorded() -> None:
    """RFC 1122 3.2.2.6: Record Route comes back updated, for the whole round trip."""
    link = Link()
    route = IPOption_RR(pointer=4, routers=["0.0.0.0"] * 3)
    link.inject(echo_request(b"where", options=[route]))
    reply = link.sent_one()
    recorded = [option for option in reply[IP].options if option.option == 7]
    assert len(recorded) == 1
    assert recorded[0].routers == [DUT_IP, DUT_IP, "0.0.0.0"]
    assert recorded[0].pointer == 12


def test_full_record_route_comes_back_as_it_was() -> None:
    link = Link()
    route = IPOption_RR(pointer=8, routers=["198.51.100.9"])
    link.inject(echo_request(b"where", options=[route]))
    recorded = [option for option in link.sent_one()[IP].options if option.option == 7]
    assert (recorded[0].routers, recorded[0].pointer) == (["198.51.100.9"], 8)


def test_echo_to_broadcast_is_answered_from_our_own_address_when_allowed() -> None:
    """RFC 1122 3.2.2.6: the reply's source MUST be a specific-destination address."""
    link = Link(Settings(icmp_echo_ignore_broadcasts=False))
    link.inject(echo_request(b"all", dst=SUBNET_BROADCAST), dst_mac=LINK_BROADCAST_MAC)
    reply = link.sent_one()
    assert (reply[IP].src, reply[IP].dst, reply[ICMP].type) == (DUT_IP, PEER_IP, 0)


def test_echo_reply_and_unknown_types_are_not_answered() -> None:
    link = Link()
    link.inject(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=0, id=1, seq=1))
    link.inject(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=42))
    link.sent_none()
    assert link.drops()[-2:] == ["icmp.unhandled_type", "icmp.unhandled_type"]


def test_icmp_with_bad_checksum_is_dropped() -> None:
    link = Link()
    link.inject(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=8, chksum=0xBEEF) / Raw(b"x"))
    link.sent_none()
    assert link.last_drop() == "icmp.bad_checksum"


# --- errors the host sends ----------------------------------------------------------------

def test_closed_port_draws_port_unreachable() -> None:
    """RFC 1122 4.1.3.1 / 3.2.2.1."""
    link = Link()
    offending = udp_from_peer(b"knock", dport=CLOSED_PORT)
    link.inject(offending)
    error = link.sent_one()
    assert (error[IP].src, error[IP].dst) == (DUT_IP, PEER_IP)
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)
    assert bytes(error[IP])[28:] == bytes(offending)  # short enough to quote whole
    assert link.last_drop() == "udp.no_socket"


def test_unknown_protocol_draws_protocol_unreachable() -> None:
    link = Link()
    link.inject(IP(src=PEER_IP, dst=DUT_IP, proto=132) / Raw(bytes(16)))
    error = link.sent_one()
    assert (error[ICMP].type, error[ICMP].code) == (3, 2)
    assert link.last_drop() == "ipv4.unknown_protocol"


def test_quote_is_header_and_data_up_to_576_bytes() -> None:
    """RFC 1122 3.2.2: the quote is the IP header and at least 8 data octets; Linux quotes
    as much as keeps the error within 576 bytes."""
    link = Link()
    offending = udp_from_peer(bytes(range(256)) * 4, dport=CLOSED_PORT)
    link.inject(offending)
    error = link.sent_one()
    assert len(error[IP]) == 576
    assert bytes(error[IP])[28:] == bytes(offending)[: 576 - 20 - 8]


def test_quote_keeps_the_offending_options() -> None:
    link = Link()
    offending = udp_from_peer(b"x" * 600, dport=CLOSED_PORT, options=[b"\x94\x04\x00\x00"])
    link.inject(offending)
    quoted = bytes(link.sent_one()[IP])[28:]
    assert quoted[0] == 0x46  # IHL 6: the options are quoted with the header
    assert quoted == bytes(offending)[:548]


def test_no_error_about_an_icmp_error() -> None:
    """RFC 1122 3.2.2: MUST NOT send an error about an ICMP error message. An error with
    a malformed option would otherwise draw a Parameter Problem, as an echo does."""
    link = Link()
    bad_option = [b"\x07\x09\x04\x00"]
    inner = bytes(udp_from_peer(src=DUT_IP, dst=PEER_IP))[:28]
    link.inject(IP(src=PEER_IP, dst=DUT_IP, options=bad_option) / ICMP(type=3, code=3)
                / Raw(inner))
    link.sent_none()
    link.inject(echo_request(options=bad_option))
    assert link.sent_one()[ICMP].type == 12
    assert suppression(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=11) / Raw(inner)) == (
        "icmp.no_error_about_error"
    )
    assert suppression(echo_request()) is None


@pytest.mark.parametrize("destination", [SUBNET_BROADCAST, "255.255.255.255"])
def test_no_error_about_a_datagram_to_a_broadcast_address(destination: str) -> None:
    """RFC 1122 3.2.2: MUST NOT send an error about a datagram to a broadcast address."""
    link = Link()
    link.inject(udp_from_peer(dst=destination, dport=CLOSED_PORT), dst_mac=LINK_BROADCAST_MAC)
    link.sent_none()
    assert (link.last_drop(), last_drop_detail(link)) == (
        "udp.no_socket", "icmp.no_error_about_broadcast"
    )


def test_no_error_about_a_datagram_to_a_multicast_address() -> None:
    assert suppression(udp_from_peer(dst="224.0.0.9")) == "icmp.no_error_about_broadcast"


def test_no_error_about_a_link_layer_broadcast() -> None:
    """RFC 1122 3.2.2: MUST NOT answer a link-layer broadcast; the host drops such a
    unicast datagram before any transport sees it (3.3.6), and the rule holds besides."""
    link = Link()
    link.inject(udp_from_peer(dport=CLOSED_PORT), dst_mac=LINK_BROADCAST_MAC)
    link.sent_none()
    assert suppression(udp_from_peer(), link_broadcast=True) == (
        "icmp.no_error_about_link_broadcast"
    )


def test_no_error_about_a_non_initial_fragment() -> None:
    """RFC 1122 3.2.2: MUST NOT send an error about a non-initial fragment: a bad option
    in fragment zero draws Parameter Problem, the same in a later fragment nothing."""
    link = Link()
    bad_option = [b"\x07\x09\x04\x00"]
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=3, proto=17, frag=2, options=bad_option)
                / Raw(bytes(16)))
    link.sent_none()
    assert link.last_drop() == "ipv4.bad_option_length"
    link.inject(IP(src=PEER_IP, dst=DUT_IP, id=3, proto=17, flags="MF", options=bad_option)
                / Raw(bytes(16)))
    assert link.sent_one()[ICMP].type == 12
    assert suppression(IP(src=PEER_IP, dst=DUT_IP, proto=17, frag=2) / Raw(bytes(16))) == (
        "icmp.no_error_about_fragment"
    )


@pytest.mark.parametrize("source", ["0.0.0.0", "127.0.0.1", "224.0.0.1", SUBNET_BROADCAST,
                                    "240.0.0.1"])
def test_no_error_to_a_source_that_is_not_one_host(source: str) -> None:
    """RFC 1122 3.2.2: MUST NOT send an error about a datagram whose source does not
    define a single host."""
    link = Link()
    link.inject(udp_from_peer(src=source, dport=CLOSED_PORT))
    link.sent_none()
    assert suppression(udp_from_peer(src=source)) == "icmp.no_error_to_non_host"


def test_error_rate_is_a_burst_then_one_per_interval() -> None:
    """RFC 1122 3.2.2: SHOULD limit the error rate. Linux: 6 at once, then 1 per 1000 ms,
    per destination; the exact instants hold on the virtual clock."""
    link = Link()
    start = link.now

    def knock() -> int:
        link.inject(udp_from_peer(dport=CLOSED_PORT))
        return len(link.sent())

    assert [knock() for _ in range(8)] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert last_drop_detail(link) == "icmp.rate_limited"
    link.advance_to(start + 500 * MILLISECOND)
    assert knock() == 0
    link.advance_to(start + 1 * SECOND - 1)
    assert knock() == 0
    link.advance_to(start + 1 * SECOND)
    assert [knock(), knock()] == [1, 0]
    link.advance_to(start + 2 * SECOND - 1)
    assert knock() == 0
    link.advance_to(start + 2 * SECOND)
    assert knock() == 1
    # Another destination has its own bucket.
    link.inject(udp_from_peer(src=PEER2_IP, dport=CLOSED_PORT), src_mac="02:00:00:00:00:03")
    assert [frame[IP].dst for frame in link.sent()] == [PEER2_IP]


def test_quiet_period_refills_the_burst_and_no_more() -> None:
    link = Link()
    for _ in range(6):
        link.inject(udp_from_peer(dport=CLOSED_PORT))
    link.sent()
    link.advance(60 * SECOND)
    counts = []
    for _ in range(8):
        link.inject(udp_from_peer(dport=CLOSED_PORT))
        counts.append(len(link.sent()))
    assert counts == [1, 1, 1, 1, 1, 1, 0, 0]


def test_echo_replies_are_not_rate_limited() -> None:
    link = Link()
    for _ in range(10):
        link.inject(echo_request())
    assert len(link.sent()) == 10


# --- errors the host receives -------------------------------------------------------------

def sent_udp(link: Link, destination: str = PEER_IP, port: int = 4000) -> Packet:
    sock = link.api.socket("udp")
    link.api.bind(sock, IPv4Address("0.0.0.0"), 1234)
    link.api.sendto(sock, b"payload!", (IPv4Address(destination), port), set(), link.now)
    return link.sent_one()


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (lambda sent: bytes(sent[IP])[:16], "icmp.bad_quote"),
        (lambda sent: b"\x65" + bytes(sent[IP])[1:28], "icmp.bad_quote"),
        (lambda sent: bytes(sent[IP])[:24], "icmp.short_quote"),
        (lambda sent: bytes(sent[IP])[:12] + IPv4Address(PEER2_IP).packed
         + bytes(sent[IP])[16:28], "icmp.quote_not_ours"),
    ],
    ids=["shorter-than-a-header", "not-ipv4", "under-8-data-bytes", "not-sent-by-us"],
)
def test_received_error_with_unusable_quote_is_dropped(quote: object, reason: str) -> None:
    link = Link()
    sock_frame = sent_udp(link)
    assert callable(quote)
    link.inject(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=3, code=3) / Raw(quote(sock_frame)))
    assert link.last_drop() == reason
    link.sent_none()


def test_error_about_a_datagram_no_socket_sent_is_dropped() -> None:
    link = Link()
    sent = sent_udp(link)
    link.api.close(3, link.now)
    link.inject(icmp_error_about(sent, 3, 3))
    assert link.last_drop() == "udp.error_for_no_socket"


def test_error_about_an_unknown_transport_is_dropped() -> None:
    link = Link()
    quoted = bytes(IP(src=DUT_IP, dst=PEER_IP, proto=132) / Raw(bytes(8)))
    link.inject(IP(src=PEER_IP, dst=DUT_IP) / ICMP(type=3, code=2) / Raw(quoted))
    assert link.last_drop() == "icmp.error_for_unknown_protocol"


# --- redirects ----------------------------------------------------------------------------

def redirect(sent: Packet, gateway: str, *, src: str = ROUTER_IP) -> Packet:
    return IP(src=src, dst=DUT_IP) / ICMP(type=5, code=1, gw=gateway) / Raw(bytes(sent[IP])[:28])


def test_redirect_from_the_first_hop_changes_the_route() -> None:
    """RFC 1122 3.2.2.2: a host MUST update its routing from a Redirect."""
    link = Link()
    link.answering[OTHER_ROUTER_IP] = OTHER_ROUTER_MAC
    first = sent_udp(link, REMOTE_IP)
    assert first[Ether].dst == ROUTER_MAC
    link.inject(redirect(first, OTHER_ROUTER_IP), src_mac=ROUTER_MAC)
    link.api.sendto(3, b"again", (IPv4Address(REMOTE_IP), 4000), set(), link.now)
    again = link.sent_one()
    assert (again[Ether].dst, again[IP].dst) == (OTHER_ROUTER_MAC, REMOTE_IP)
    # Only that destination moves; the rest of the network keeps the configured gateway.
    link.api.sendto(3, b"other", (IPv4Address("198.51.100.8"), 4000), set(), link.now)
    assert link.sent_one()[Ether].dst == ROUTER_MAC


def test_redirect_from_another_host_than_the_first_hop_is_ignored() -> None:
    """RFC 1122 3.2.2.2: SHOULD discard a Redirect not from the current first hop."""
    link = Link()
    first = sent_udp(link, REMOTE_IP)
    link.inject(redirect(first, OTHER_ROUTER_IP, src=PEER_IP))
    assert link.last_drop() == "icmp.bad_redirect"
    link.api.sendto(3, b"again", (IPv4Address(REMOTE_IP), 4000), set(), link.now)
    assert link.sent_one()[Ether].dst == ROUTER_MAC


def test_redirect_to_an_off_link_gateway_is_ignored() -> None:
    link = Link()
    first = sent_udp(link, REMOTE_IP)
    link.inject(redirect(first, "198.51.100.1"), src_mac=ROUTER_MAC)
    assert link.last_drop() == "icmp.bad_redirect"
    assert link.host.next_hop(IPv4Address(REMOTE_IP)) == IPv4Address(ROUTER_IP)


def test_redirect_is_not_reported_to_the_socket() -> None:
    link = Link()
    link.answering[OTHER_ROUTER_IP] = OTHER_ROUTER_MAC
    first = sent_udp(link, REMOTE_IP)
    link.api.setsockopt(3, "IP_RECVERR", 1, link.now)
    link.inject(redirect(first, OTHER_ROUTER_IP), src_mac=ROUTER_MAC)
    assert link.api.poll(3, {"POLLIN", "POLLOUT"}) == {"POLLOUT"}
    assert link.api.getsockopt(3, "SO_ERROR", link.now) is None


def test_port_unreachable_answers_use_the_router_for_off_link_sources() -> None:
    link = Link()
    link.inject(udp_from_peer(src=REMOTE_IP, dport=CLOSED_PORT), src_mac=ROUTER_MAC)
    error = link.sent_one()
    assert (error[Ether].dst, error[IP].dst, error[ICMP].type) == (ROUTER_MAC, REMOTE_IP, 3)
    assert error[UDPerror].dport == CLOSED_PORT  # scapy reads the quoted UDP header
