"""UDP in the reference stack: what IP passes up with a datagram, read through recvmsg
as ip(7)'s ancillary data: the options (IP_RECVOPTS, RFC 1122 4.1.3.2), the TOS
(IP_RECVTOS, RFC 1122 4.1.4) and the specific destination (IP_PKTINFO, RFC 1122 4.1.3.5)."""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.inet import IPOption

from stack.endpoints import PacketInfo
from tests.stack_link import DUT_IP, SUBNET_BROADCAST, Link, udp_from_peer

ANY = IPv4Address("0.0.0.0")
PORT = 7
STREAM_ID = bytes([136, 4, 0x12, 0x34])  # RFC 791 Stream Identifier


def bound_socket(link: Link) -> int:
    sock = link.api.socket("udp")
    link.api.bind(sock, ANY, PORT)
    return sock


def test_nothing_is_passed_up_unless_asked_for() -> None:
    link = Link()
    sock = bound_socket(link)
    link.inject(udp_from_peer(b"x", dport=PORT, tos=0x28, options=[IPOption(STREAM_ID)]))
    message = link.api.recvmsg(sock, 100, set())
    assert (message.options, message.tos, message.pktinfo) == (None, None, None)


def test_options_tos_and_destination_are_passed_up_when_asked_for() -> None:
    link = Link()
    sock = bound_socket(link)
    for name in ("IP_RECVOPTS", "IP_RECVTOS", "IP_PKTINFO"):
        link.api.setsockopt(sock, name, 1, link.now)
        assert link.api.getsockopt(sock, name, link.now) == 1
    link.inject(udp_from_peer(b"x", dport=PORT, tos=0x28, options=[IPOption(STREAM_ID)]))
    message = link.api.recvmsg(sock, 100, set())
    assert message.options == STREAM_ID
    assert message.tos == 0x28
    assert message.pktinfo == PacketInfo(2, IPv4Address(DUT_IP), IPv4Address(DUT_IP))


def test_a_datagram_without_options_brings_none() -> None:
    """Linux ip_cmsg_recv_opts: no control message for an empty options area."""
    link = Link()
    sock = bound_socket(link)
    link.api.setsockopt(sock, "IP_RECVOPTS", 1, link.now)
    link.inject(udp_from_peer(b"x", dport=PORT))
    assert link.api.recvmsg(sock, 100, set()).options is None


def test_pktinfo_tells_a_broadcast_from_a_unicast_datagram() -> None:
    """RFC 1122 4.1.3.5: the specific destination; a reply comes from our address."""
    link = Link()
    sock = bound_socket(link)
    link.api.setsockopt(sock, "IP_PKTINFO", 1, link.now)
    link.inject(udp_from_peer(b"b", dport=PORT, dst=SUBNET_BROADCAST))
    link.inject(udp_from_peer(b"u", dport=PORT))
    broadcast = link.api.recvmsg(sock, 100, set()).pktinfo
    unicast = link.api.recvmsg(sock, 100, set()).pktinfo
    assert broadcast == PacketInfo(2, IPv4Address(DUT_IP), IPv4Address(SUBNET_BROADCAST))
    assert unicast == PacketInfo(2, IPv4Address(DUT_IP), IPv4Address(DUT_IP))
