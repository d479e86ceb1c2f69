"""ARP in the reference stack (RFC 826, RFC 1122 2.3.2): answering, learning, resolving
with retries on a virtual clock, and the queue of datagrams that wait for an answer."""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from stack.settings import Settings
from stack.timing import SECOND
from tests.stack_link import (
    DUT_IP,
    DUT_MAC,
    LINK_BROADCAST_MAC,
    PEER2_IP,
    PEER2_MAC,
    PEER_IP,
    PEER_MAC,
    REMOTE_IP,
    ROUTER_IP,
    ROUTER_MAC,
    Link,
)


def arp_request(sender_ip: str, sender_mac: str, target_ip: str) -> Ether:
    return Ether(src=sender_mac, dst=LINK_BROADCAST_MAC) / ARP(
        op=1, hwsrc=sender_mac, psrc=sender_ip, hwdst="00:00:00:00:00:00", pdst=target_ip
    )


def send_udp(link: Link, destination: str, payload: bytes = b"hello", port: int = 9) -> int:
    sock = link.api.socket("udp")
    link.api.sendto(sock, payload, (IPv4Address(destination), port), set(), link.now)
    return sock


def test_request_for_our_address_is_answered_to_the_asker() -> None:
    link = Link(neighbours=False)
    link.inject(arp_request(PEER_IP, PEER_MAC, DUT_IP))
    reply = link.sent_one()
    assert reply[Ether].dst == PEER_MAC
    assert reply[Ether].src == DUT_MAC
    assert (reply[ARP].op, reply[ARP].hwsrc, reply[ARP].psrc) == (2, DUT_MAC, DUT_IP)
    assert (reply[ARP].hwdst, reply[ARP].pdst) == (PEER_MAC, PEER_IP)
    # RFC 826: the target of a request learns its sender.
    assert link.host.arp.entries(link.now) == {PEER_IP: PEER_MAC}


def test_request_for_another_address_is_not_answered_and_teaches_nothing() -> None:
    link = Link(neighbours=False)
    link.inject(arp_request(PEER_IP, PEER_MAC, PEER2_IP))
    link.sent_none()
    assert link.last_drop() == "arp.not_for_us"
    assert link.host.arp.entries(link.now) == {}


def test_claim_of_our_own_address_is_refused() -> None:
    link = Link(neighbours=False)
    link.inject(arp_request(DUT_IP, PEER_MAC, DUT_IP))
    link.sent_none()
    assert link.last_drop() == "arp.address_conflict"


def test_multicast_sender_is_refused() -> None:
    link = Link(neighbours=False)
    link.inject(arp_request(PEER_IP, "03:00:00:00:00:02", DUT_IP))
    link.sent_none()
    assert link.last_drop() == "arp.bad_sender"


def test_gratuitous_arp_refreshes_a_known_neighbour_and_creates_no_new_one() -> None:
    link = Link(neighbours=False)
    link.learn(PEER_IP, PEER_MAC)
    link.inject(arp_request(PEER_IP, "02:00:00:00:00:22", PEER_IP))
    link.inject(arp_request(PEER2_IP, PEER2_MAC, PEER2_IP))
    assert link.host.arp.entries(link.now) == {PEER_IP: "02:00:00:00:00:22"}


def test_datagram_waits_for_resolution_then_goes_to_the_answered_mac() -> None:
    link = Link(neighbours=False)
    send_udp(link, PEER_IP, b"first")
    released = link.answer_arp(PEER_IP, PEER_MAC)
    assert len(released) == 1
    assert released[0][Ether].dst == PEER_MAC
    assert bytes(released[0][UDP].payload) == b"first"
    # The answer is cached: the next datagram goes out at once, without a request.
    send_udp(link, PEER_IP, b"second")
    frame = link.sent_one()
    assert (frame[Ether].dst, bytes(frame[UDP].payload)) == (PEER_MAC, b"second")


def test_request_is_broadcast_and_names_the_next_hop() -> None:
    link = Link(neighbours=False)
    send_udp(link, REMOTE_IP)
    request = link.sent_one()
    assert request[Ether].dst == LINK_BROADCAST_MAC
    assert (request[ARP].op, request[ARP].psrc, request[ARP].hwsrc) == (1, DUT_IP, DUT_MAC)
    # An off-link destination is resolved through its gateway, never itself.
    assert request[ARP].pdst == ROUTER_IP


def test_off_link_datagram_goes_to_the_router_mac() -> None:
    link = Link(neighbours=False)
    send_udp(link, REMOTE_IP)
    released = link.answer_arp(ROUTER_IP, ROUTER_MAC)
    assert [(frame[Ether].dst, frame[IP].dst) for frame in released] == [(ROUTER_MAC, REMOTE_IP)]


def test_requests_are_retried_at_one_second_intervals_then_given_up() -> None:
    """Linux defaults: 3 requests (mcast_solicit), 1 s apart (retrans_time_ms), failure
    at 3 s; the waiting datagram is dropped as unresolved."""
    link = Link(neighbours=False)
    start = link.now
    send_udp(link, PEER_IP)
    assert [frame[ARP].pdst for frame in link.sent()] == [PEER_IP]
    assert link.host.next_timer() == start + 1 * SECOND

    link.advance_to(start + 1 * SECOND - 1)
    link.sent_none()
    link.advance_to(start + 1 * SECOND)
    assert [frame[ARP].pdst for frame in link.sent()] == [PEER_IP]
    assert link.host.next_timer() == start + 2 * SECOND

    link.advance_to(start + 2 * SECOND)
    assert [frame[ARP].pdst for frame in link.sent()] == [PEER_IP]
    assert link.host.next_timer() == start + 3 * SECOND

    link.advance_to(start + 3 * SECOND)
    link.sent_none()
    assert link.last_drop() == "arp.unresolved"
    assert link.host.next_timer() is None


def test_late_answer_after_giving_up_creates_no_entry() -> None:
    link = Link(neighbours=False)
    send_udp(link, PEER_IP)
    link.advance(3 * SECOND)
    link.sent()
    link.inject(
        Ether(src=PEER_MAC, dst=DUT_MAC)
        / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=DUT_MAC, pdst=PEER2_IP)
    )
    assert link.host.arp.entries(link.now) == {}


def test_unsolicited_reply_to_us_creates_no_entry() -> None:
    # Linux (arp_accept = 0): only a request for our address adds a neighbour.
    link = Link(neighbours=False)
    link.inject(
        Ether(src=PEER_MAC, dst=DUT_MAC)
        / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=DUT_MAC, pdst=DUT_IP)
    )
    assert link.host.arp.entries(link.now) == {}


def test_several_datagrams_wait_behind_one_request() -> None:
    link = Link(neighbours=False)
    sock = send_udp(link, PEER_IP, b"one")
    link.api.sendto(sock, b"two", (IPv4Address(PEER_IP), 9), set(), link.now)
    released = link.answer_arp(PEER_IP, PEER_MAC)
    assert [bytes(frame[UDP].payload) for frame in released] == [b"one", b"two"]


def test_full_queue_drops_the_oldest_datagram() -> None:
    link = Link(Settings(arp_queue_limit=2), neighbours=False)
    sock = send_udp(link, PEER_IP, b"one")
    for payload in (b"two", b"three"):
        link.api.sendto(sock, payload, (IPv4Address(PEER_IP), 9), set(), link.now)
    assert link.last_drop() == "arp.queue_full"
    released = link.answer_arp(PEER_IP, PEER_MAC)
    assert [bytes(frame[UDP].payload) for frame in released] == [b"two", b"three"]


def test_entry_expires_after_its_lifetime_and_is_asked_for_again() -> None:
    link = Link(Settings(arp_entry_lifetime=60 * SECOND), neighbours=False)
    link.learn(PEER_IP, PEER_MAC)
    learned_at = link.now
    assert link.host.next_timer() == learned_at + 60 * SECOND
    link.advance_to(learned_at + 60 * SECOND - 1)
    assert link.host.arp.entries(link.now) == {PEER_IP: PEER_MAC}
    link.advance_to(learned_at + 60 * SECOND)
    assert link.host.arp.entries(link.now) == {}
    send_udp(link, PEER_IP)
    request = link.sent_one()
    assert (request[ARP].op, request[ARP].pdst) == (1, PEER_IP)


def test_truncated_arp_is_dropped_with_its_reason() -> None:
    link = Link(neighbours=False)
    whole = bytes(arp_request(PEER_IP, PEER_MAC, DUT_IP)[ARP])
    link.inject(Ether(src=PEER_MAC, dst=LINK_BROADCAST_MAC, type=0x0806) / whole[:20])
    assert link.last_drop() == "arp.truncated"
