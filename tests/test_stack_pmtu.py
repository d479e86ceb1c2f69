"""Path MTU discovery in the reference stack (RFC 1191): the estimate per destination,
lowered by Datagram Too Big, never raised by one, floored, plateaus for routers that
send no Next-Hop MTU, and aged back to the link MTU on the virtual clock."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.packet import Packet

from stack.errors import SocketError
from stack.pmtu import plateau_below
from stack.settings import Settings
from stack.timing import SECOND
from tests.stack_link import REMOTE_IP, ROUTER_IP, ROUTER_MAC, Link, icmp_error_about

REMOTE = IPv4Address(REMOTE_IP)
PORT = 4000
# ARP entries outlive every PMTU deadline here, so that next_timer() shows the estimate's.
LONG_ARP = Settings(arp_entry_lifetime=100_000 * SECOND)


class Path:
    """A connected UDP socket towards a host behind the router."""

    def __init__(self, settings: Settings = LONG_ARP, mtu: int = 1500) -> None:
        self.link = Link(settings, mtu=mtu)
        self.sock = self.link.api.socket("udp")
        self.link.api.connect(self.sock, REMOTE, PORT)

    def send(self, size: int) -> list[Packet]:
        self.link.api.sendto(self.sock, bytes(size), None, set(), self.link.now)
        return self.link.sent()

    def too_big(self, next_hop_mtu: int, size: int = 1472) -> None:
        """Send a datagram of ``size`` payload bytes and have the router refuse it. The
        connected socket learns it as EMSGSIZE (Linux __udp4_lib_err), taken here."""
        (sent,) = self.send(size)
        self.link.inject(
            icmp_error_about(sent, 3, 4, src=ROUTER_IP, nexthopmtu=next_hop_mtu),
            src_mac=ROUTER_MAC,
        )
        assert self.link.api.getsockopt(self.sock, "SO_ERROR", self.link.now) == "EMSGSIZE"

    @property
    def mtu(self) -> int:
        value = self.link.api.getsockopt(self.sock, "IP_MTU", self.link.now)
        assert isinstance(value, int)
        return value


def test_datagram_too_big_lowers_the_estimate() -> None:
    path = Path()
    assert path.mtu == 1500
    path.too_big(1400)
    assert path.mtu == 1400
    assert path.link.host.pmtu.entries(path.link.now) == {REMOTE_IP: 1400}
    # What fits goes with DF; what does not is fragmented to the new size (IP_PMTUDISC_WANT).
    (fits,) = path.send(1400 - 28)
    assert (len(fits[IP]), str(fits[IP].flags)) == (1400, "DF")
    pieces = path.send(1400 - 27)
    assert [len(piece[IP]) for piece in pieces] == [1396, 20 + 1381 - 1376]
    assert [str(piece[IP].flags) for piece in pieces] == ["MF", ""]


def test_estimate_is_kept_per_destination() -> None:
    path = Path()
    path.too_big(1400)
    host = path.link.host
    assert host.path_mtu(IPv4Address("198.51.100.8"), path.link.now) == 1500


def test_datagram_too_big_never_raises_the_estimate() -> None:
    """RFC 1191 3: MUST NOT increase the estimate in response to a Datagram Too Big."""
    path = Path()
    path.too_big(1400, size=1000)
    path.too_big(1450, size=1000)
    assert path.mtu == 1400
    path.too_big(9000, size=1000)
    assert path.mtu == 1400


def test_report_above_the_link_mtu_creates_no_estimate() -> None:
    path = Path()
    path.too_big(9000)
    assert path.mtu == 1500
    assert path.link.host.pmtu.entries(path.link.now) == {}


@pytest.mark.parametrize(
    ("min_pmtu", "next_hop_mtu", "estimate"),
    [
        (552, 300, 552),  # Linux's net.ipv4.route.min_pmtu
        (552, 68, 552),
        (68, 300, 300),
        (68, 40, 68),  # RFC 1191 3: never below 68, whatever the setting
        (0, 40, 68),
    ],
)
def test_estimate_is_floored(min_pmtu: int, next_hop_mtu: int, estimate: int) -> None:
    path = Path(Settings(min_pmtu=min_pmtu, arp_entry_lifetime=100_000 * SECOND))
    path.too_big(next_hop_mtu, size=200)
    assert path.mtu == estimate


def test_floor_never_raises_an_estimate_below_it() -> None:
    path = Path(mtu=500)
    path.too_big(300, size=200)
    assert path.mtu == 500


@pytest.mark.parametrize(
    ("payload", "estimate"),
    [
        (1472, 1492),  # a 1500-byte datagram: the plateau below is 1492
        (1464, 1006),  # exactly 1492 bytes: the plateau strictly below
    ],
)
def test_zero_next_hop_mtu_takes_the_plateau_below(payload: int, estimate: int) -> None:
    """RFC 1191 5: a router that does not fill in the Next-Hop MTU; take the plateau
    below the quoted datagram's total length."""
    path = Path()
    path.too_big(0, size=payload)
    assert path.mtu == estimate


def test_zero_next_hop_mtu_plateau_still_respects_the_floor() -> None:
    path = Path()
    path.too_big(0, size=1472)
    assert path.mtu == 1492
    path.too_big(0, size=1000 - 28)  # 1000 bytes: the plateau below is 508, under 552
    assert path.mtu == 552


def test_zero_next_hop_mtu_minimum_setting_falls_to_min_pmtu() -> None:
    """Linux's choice: a zero Next-Hop MTU lowers the estimate to min_pmtu at once."""
    path = Path(Settings(zero_next_hop_mtu="minimum", arp_entry_lifetime=100_000 * SECOND))
    path.too_big(0, size=1472)
    assert path.mtu == 552


def test_plateau_table() -> None:
    assert [plateau_below(n) for n in (65536, 65535, 1500, 1492, 1006, 577, 296, 69, 68)] == [
        65535, 32000, 1492, 1006, 508, 508, 68, 68, 68,
    ]


def test_estimate_ages_back_to_the_link_mtu_at_exactly_pmtu_expires() -> None:
    """RFC 1191 6.3: estimates are aged so that an increase is noticed; Linux forgets a
    learned PMTU after net.ipv4.route.mtu_expires (600 s)."""
    path = Path()
    link = path.link
    path.too_big(1400)
    learned_at = link.now
    assert link.host.next_timer() == learned_at + 600 * SECOND
    link.advance_to(learned_at + 600 * SECOND - 1)
    assert path.mtu == 1400
    link.advance_to(learned_at + 600 * SECOND)
    assert path.mtu == 1500
    assert link.host.pmtu.entries(link.now) == {}
    (again,) = path.send(1472)
    assert (len(again[IP]), str(again[IP].flags)) == (1500, "DF")


def test_aging_follows_the_setting_and_each_lowering_restarts_it() -> None:
    path = Path(Settings(pmtu_expires=10 * SECOND, arp_entry_lifetime=100_000 * SECOND))
    link = path.link
    path.too_big(1400)
    link.advance(4 * SECOND)
    path.too_big(1300, size=1000)
    lowered_at = link.now
    assert link.host.next_timer() == lowered_at + 10 * SECOND
    link.advance_to(lowered_at + 10 * SECOND - 1)
    assert path.mtu == 1300
    link.advance_to(lowered_at + 10 * SECOND)
    assert path.mtu == 1500
    assert link.host.next_timer() == link.host.arp.next_timer()


def test_too_big_reports_emsgsize_once_to_a_connected_socket() -> None:
    """The socket learns why its datagram went nowhere (Linux __udp4_lib_err): the next
    call fails with EMSGSIZE, the one after goes through."""
    path = Path()
    (sent,) = path.send(1472)
    path.link.inject(icmp_error_about(sent, 3, 4, src=ROUTER_IP, nexthopmtu=1400),
                     src_mac=ROUTER_MAC)
    with pytest.raises(SocketError) as failure:
        path.send(100)
    assert failure.value.errno == "EMSGSIZE"
    (again,) = path.send(100)
    assert again[UDP].dport == PORT
