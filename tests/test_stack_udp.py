"""UDP in the reference stack through its socket API (RFC 768, RFC 1122 4.1, Linux udp(7)
and ip(7)): binding, connecting, datagram boundaries, corking, ICMP errors as errno and
in the error queue, path MTU discovery modes, the receive buffer and poll."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from stack.endpoints import ExtendedError, Message
from stack.errors import SocketError
from stack.settings import Settings
from stack.timing import SECOND
from tests.stack_link import (
    DUT_IP,
    LINK_BROADCAST_MAC,
    PEER2_IP,
    PEER_IP,
    PEER_MAC,
    REMOTE_IP,
    ROUTER_IP,
    ROUTER_MAC,
    SUBNET_BROADCAST,
    UNROUTED_IP,
    Link,
    icmp_error_about,
    udp_from_peer,
)

ANY = IPv4Address("0.0.0.0")
DUT = IPv4Address(DUT_IP)
PEER = IPv4Address(PEER_IP)
LOCAL_PORT = 7
PEER_PORT = 5000


def errno_of(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(SocketError) as failure:
        call(*args)
    return failure.value.errno


class Udp:
    """A link and the calls a case makes on its socket API, with the clock filled in."""

    def __init__(self, settings: Settings | None = None, **link_options: object) -> None:
        self.link = Link(settings, **link_options)  # type: ignore[arg-type]
        self.api = self.link.api

    def socket(self, port: int | None = None, *, address: IPv4Address = ANY) -> int:
        sock = self.api.socket("udp")
        if port is not None:
            self.api.bind(sock, address, port)
        return sock

    def connected(self, peer: IPv4Address = PEER, port: int = PEER_PORT,
                  local_port: int = LOCAL_PORT) -> int:
        sock = self.socket(local_port)
        self.api.connect(sock, peer, port)
        return sock

    def send(self, sock: int, data: bytes, to: tuple[str, int] | None = None,
             flags: set[str] | None = None) -> int:
        destination = None if to is None else (IPv4Address(to[0]), to[1])
        return self.api.sendto(sock, data, destination, flags or set(), self.link.now)

    def recv(self, sock: int, size: int = 65535, flags: set[str] | None = None) -> Message:
        return self.api.recvmsg(sock, size, flags or set())

    def error_queue(self, sock: int) -> ExtendedError:
        message = self.recv(sock, 2000, {"MSG_ERRQUEUE"})
        assert message.error is not None
        return message.error

    def setsockopt(self, sock: int, name: str, value: int | str) -> None:
        self.api.setsockopt(sock, name, value, self.link.now)

    def getsockopt(self, sock: int, name: str) -> int | str | None:
        return self.api.getsockopt(sock, name, self.link.now)

    def from_peer(self, payload: bytes, *, dport: int = LOCAL_PORT, sport: int = PEER_PORT,
                  src: str = PEER_IP) -> None:
        self.link.inject(udp_from_peer(payload, sport=sport, dport=dport, src=src))

    def refused(self, sent: Packet) -> None:
        """The peer answers ``sent`` with ICMP Port Unreachable."""
        self.link.inject(icmp_error_about(sent, 3, 3))


# --- binding ------------------------------------------------------------------------------

def test_bind_takes_the_port_and_address_asked_for() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT, address=DUT)
    assert udp.api.getsockname(sock) == (DUT, LOCAL_PORT)
    assert errno_of(udp.api.bind, sock, ANY, 8) == "EINVAL"  # already bound


def test_bind_to_an_address_of_another_host_fails() -> None:
    udp = Udp()
    assert errno_of(udp.api.bind, udp.socket(), PEER, LOCAL_PORT) == "EADDRNOTAVAIL"


def test_bind_to_port_zero_picks_an_ephemeral_port_in_the_range() -> None:
    udp = Udp(Settings(ephemeral_ports=(40000, 40002)))
    ports = []
    for _ in range(3):
        sock = udp.socket(0)
        ports.append(udp.api.getsockname(sock)[1])
    assert sorted(ports) == [40000, 40001, 40002]


def test_send_on_an_unbound_socket_binds_an_ephemeral_port() -> None:
    udp = Udp()
    sock = udp.socket()
    assert udp.api.getsockname(sock) == (ANY, 0)
    udp.send(sock, b"x", (PEER_IP, PEER_PORT))
    port = udp.api.getsockname(sock)[1]
    assert 32768 <= port <= 60999
    assert udp.link.sent_one()[UDP].sport == port


def test_same_port_twice_is_in_use() -> None:
    udp = Udp()
    udp.socket(LOCAL_PORT)
    assert errno_of(udp.api.bind, udp.socket(), ANY, LOCAL_PORT) == "EADDRINUSE"
    # A specific address conflicts with the wildcard too.
    assert errno_of(udp.api.bind, udp.socket(), DUT, LOCAL_PORT) == "EADDRINUSE"


def test_so_reuseaddr_on_both_sockets_shares_the_port() -> None:
    udp = Udp()
    first, second, third = udp.socket(), udp.socket(), udp.socket()
    udp.setsockopt(first, "SO_REUSEADDR", 1)
    udp.setsockopt(second, "SO_REUSEADDR", 1)
    udp.api.bind(first, ANY, LOCAL_PORT)
    udp.api.bind(second, ANY, LOCAL_PORT)
    assert udp.api.getsockname(second) == (ANY, LOCAL_PORT)
    # Both sides must ask for it.
    assert errno_of(udp.api.bind, third, ANY, LOCAL_PORT) == "EADDRINUSE"


# --- connect ------------------------------------------------------------------------------

def test_connected_socket_takes_datagrams_from_its_peer_only() -> None:
    """RFC 1122 4.1.3.5 / udp(7): a connected socket filters by its peer; a datagram from
    anyone else finds no socket and draws Port Unreachable."""
    udp = Udp()
    sock = udp.connected()
    assert udp.api.getpeername(sock) == (PEER, PEER_PORT)
    udp.from_peer(b"stranger", sport=PEER_PORT + 1)
    udp.from_peer(b"other host", src=PEER2_IP)
    udp.from_peer(b"peer")
    assert udp.recv(sock).data == b"peer"
    assert errno_of(udp.recv, sock) == "EAGAIN"
    assert [(f[ICMP].type, f[ICMP].code) for f in udp.link.sent()] == [(3, 3), (3, 3)]


def test_connect_gives_a_wildcard_socket_the_source_address() -> None:
    """Linux ip4_datagram_connect: getsockname then names the address datagrams leave from."""
    udp = Udp()
    sock = udp.socket()
    udp.api.connect(sock, PEER, PEER_PORT)
    address, port = udp.api.getsockname(sock)
    assert address == IPv4Address("192.0.2.1") and port != 0


def test_connected_socket_wins_over_a_wildcard_one_for_its_peer() -> None:
    udp = Udp()
    wildcard, connected = udp.socket(), udp.socket()
    for sock in (wildcard, connected):
        udp.setsockopt(sock, "SO_REUSEADDR", 1)
        udp.api.bind(sock, ANY, LOCAL_PORT)
    udp.api.connect(connected, PEER, PEER_PORT)
    udp.from_peer(b"for the connected one")
    udp.from_peer(b"for the wildcard one", src=PEER2_IP)
    assert udp.recv(connected).data == b"for the connected one"
    assert udp.recv(wildcard).data == b"for the wildcard one"


def test_send_on_a_connected_socket_goes_to_the_peer() -> None:
    udp = Udp()
    sock = udp.connected()
    assert udp.send(sock, b"hello") == 5
    frame = udp.link.sent_one()
    assert (frame[Ether].dst, frame[IP].src, frame[IP].dst) == (PEER_MAC, DUT_IP, PEER_IP)
    assert (frame[UDP].sport, frame[UDP].dport, frame[UDP].len) == (LOCAL_PORT, PEER_PORT, 13)
    assert bytes(frame[UDP].payload) == b"hello"
    assert (frame[IP].ttl, str(frame[IP].flags)) == (64, "DF")
    # scapy agrees with the checksum the stack computed.
    recomputed = frame[IP].copy()
    del recomputed[UDP].chksum
    assert IP(bytes(recomputed))[UDP].chksum == frame[UDP].chksum


def test_send_without_destination_on_an_unconnected_socket_fails() -> None:
    udp = Udp()
    assert errno_of(udp.send, udp.socket(LOCAL_PORT), b"x") == "EDESTADDRREQ"
    udp.link.sent_none()


def test_broadcast_needs_so_broadcast() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    assert errno_of(udp.send, sock, b"x", (SUBNET_BROADCAST, PEER_PORT)) == "EACCES"
    assert errno_of(udp.api.connect, sock, IPv4Address("255.255.255.255"), 9) == "EACCES"
    udp.link.sent_none()
    udp.setsockopt(sock, "SO_BROADCAST", 1)
    udp.send(sock, b"all", (SUBNET_BROADCAST, PEER_PORT))
    frame = udp.link.sent_one()
    assert (frame[Ether].dst, frame[IP].dst) == (LINK_BROADCAST_MAC, SUBNET_BROADCAST)


def test_destination_without_a_route_is_unreachable() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    assert errno_of(udp.send, sock, b"x", (UNROUTED_IP, PEER_PORT)) == "ENETUNREACH"
    assert errno_of(udp.api.connect, sock, IPv4Address(UNROUTED_IP), PEER_PORT) == "ENETUNREACH"
    udp.send(sock, b"routed", (REMOTE_IP, PEER_PORT))
    assert udp.link.sent_one()[Ether].dst == ROUTER_MAC


def test_destination_port_zero_is_invalid() -> None:
    udp = Udp()
    assert errno_of(udp.send, udp.socket(), b"x", (PEER_IP, 0)) == "EINVAL"


# --- datagram boundaries ------------------------------------------------------------------

def test_each_receive_returns_one_datagram_with_its_source() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.from_peer(b"first")
    udp.from_peer(b"second", sport=PEER_PORT + 1)
    first, second = udp.recv(sock), udp.recv(sock)
    assert (first.data, first.address, first.flags) == (b"first", (PEER, PEER_PORT), [])
    assert (second.data, second.address) == (b"second", (PEER, PEER_PORT + 1))
    assert errno_of(udp.recv, sock) == "EAGAIN"


def test_short_read_truncates_and_discards_the_rest() -> None:
    """udp(7): the rest of a datagram longer than the buffer is lost; MSG_TRUNC says so
    and the length is the datagram's own."""
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.from_peer(b"0123456789")
    udp.from_peer(b"next")
    message = udp.recv(sock, 4)
    assert (message.data, message.length, message.flags) == (b"0123", 10, ["MSG_TRUNC"])
    assert udp.recv(sock).data == b"next"


def test_msg_peek_leaves_the_datagram_queued() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.from_peer(b"look")
    udp.from_peer(b"later")
    assert udp.recv(sock, 100, {"MSG_PEEK"}).data == b"look"
    assert udp.recv(sock, 2, {"MSG_PEEK"}).flags == ["MSG_TRUNC"]
    assert udp.recv(sock).data == b"look"
    assert udp.recv(sock).data == b"later"


def test_fionread_is_the_size_of_the_next_datagram() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    assert udp.api.ioctl(sock, "FIONREAD") == 0
    udp.from_peer(b"123")
    udp.from_peer(b"1234567")
    assert udp.api.ioctl(sock, "FIONREAD") == 3
    udp.recv(sock)
    assert udp.api.ioctl(sock, "FIONREAD") == 7
    udp.recv(sock)
    assert udp.api.ioctl(sock, "FIONREAD") == 0


def test_empty_datagram_is_delivered() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.from_peer(b"")
    message = udp.recv(sock)
    assert (message.data, message.length, message.address) == (b"", 0, (PEER, PEER_PORT))


# --- corking ------------------------------------------------------------------------------

def test_udp_cork_joins_sends_into_one_datagram() -> None:
    udp = Udp()
    sock = udp.connected()
    udp.setsockopt(sock, "UDP_CORK", 1)
    assert udp.send(sock, b"abc") == 3
    assert udp.send(sock, b"defg") == 4
    udp.link.sent_none()
    assert udp.api.ioctl(sock, "SIOCOUTQ") == 7
    udp.setsockopt(sock, "UDP_CORK", 0)
    frame = udp.link.sent_one()
    assert bytes(frame[UDP].payload) == b"abcdefg"
    assert udp.api.ioctl(sock, "SIOCOUTQ") == 0


def test_msg_more_joins_sends_until_one_without_it() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.send(sock, b"ab", (PEER_IP, PEER_PORT), {"MSG_MORE"})
    udp.send(sock, b"cd", None, {"MSG_MORE"})
    udp.link.sent_none()
    assert udp.api.ioctl(sock, "SIOCOUTQ") == 4
    udp.send(sock, b"ef")
    frame = udp.link.sent_one()
    assert (frame[IP].dst, frame[UDP].dport, bytes(frame[UDP].payload)) == (
        PEER_IP, PEER_PORT, b"abcdef"
    )
    udp.send(sock, b"alone", (PEER_IP, PEER_PORT))
    assert bytes(udp.link.sent_one()[UDP].payload) == b"alone"


# --- checksums ----------------------------------------------------------------------------

def test_zero_checksum_means_none_and_is_accepted() -> None:
    """RFC 768: an all-zero checksum means the sender computed none."""
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.link.inject(IP(src=PEER_IP, dst=DUT_IP) / UDP(sport=PEER_PORT, dport=LOCAL_PORT, chksum=0)
                    / Raw(b"unchecked"))
    assert udp.recv(sock).data == b"unchecked"


def test_bad_checksum_is_dropped_silently() -> None:
    """RFC 1122 4.1.3.4: a datagram with a bad checksum MUST be silently discarded."""
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.link.inject(IP(src=PEER_IP, dst=DUT_IP)
                    / UDP(sport=PEER_PORT, dport=LOCAL_PORT, chksum=0x1234) / Raw(b"bad"))
    assert udp.link.last_drop() == "udp.bad_checksum"
    assert errno_of(udp.recv, sock) == "EAGAIN"
    udp.link.sent_none()


def test_bad_checksum_to_a_closed_port_draws_no_port_unreachable() -> None:
    udp = Udp()
    udp.link.inject(IP(src=PEER_IP, dst=DUT_IP) / UDP(sport=PEER_PORT, dport=9, chksum=0x1234))
    assert udp.link.last_drop() == "udp.bad_checksum"
    udp.link.sent_none()


def test_closed_port_draws_port_unreachable() -> None:
    udp = Udp()
    offending = udp_from_peer(b"anyone?", dport=9)
    udp.link.inject(offending)
    error = udp.link.sent_one()
    assert (error[ICMP].type, error[ICMP].code) == (3, 3)
    assert bytes(error[IP])[28:] == bytes(offending)


# --- ICMP errors as errno -----------------------------------------------------------------

def refused_connected_socket(udp: Udp) -> int:
    sock = udp.connected()
    udp.send(sock, b"knock")
    udp.refused(udp.link.sent_one())
    return sock


def test_port_unreachable_fails_the_next_send_once() -> None:
    """RFC 1122 4.1.3.3: pass the error up; Linux reports ECONNREFUSED on the next call
    of a connected socket, once, and the datagram of that call is not sent."""
    udp = Udp()
    sock = refused_connected_socket(udp)
    assert errno_of(udp.send, sock, b"again") == "ECONNREFUSED"
    udp.link.sent_none()
    assert udp.send(sock, b"third") == 5
    assert bytes(udp.link.sent_one()[UDP].payload) == b"third"


def test_port_unreachable_fails_the_next_receive_once() -> None:
    udp = Udp()
    sock = refused_connected_socket(udp)
    udp.from_peer(b"queued")
    assert errno_of(udp.recv, sock) == "ECONNREFUSED"
    assert udp.recv(sock).data == b"queued"


def test_port_unreachable_is_read_once_by_so_error() -> None:
    udp = Udp()
    sock = refused_connected_socket(udp)
    assert udp.api.poll(sock, set()) == {"POLLERR"}
    assert udp.getsockopt(sock, "SO_ERROR") == "ECONNREFUSED"
    assert udp.getsockopt(sock, "SO_ERROR") is None
    assert udp.api.poll(sock, set()) == set()
    assert udp.send(sock, b"fine") == 4


def test_port_unreachable_is_not_reported_to_an_unconnected_socket() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.send(sock, b"knock", (PEER_IP, PEER_PORT))
    udp.refused(udp.link.sent_one())
    assert udp.getsockopt(sock, "SO_ERROR") is None
    assert udp.send(sock, b"again", (PEER_IP, PEER_PORT)) == 5


def test_soft_errors_are_not_reported_without_ip_recverr() -> None:
    """Linux __udp4_lib_err: without IP_RECVERR, host unreachable and time exceeded
    (soft errors, RFC 1122 4.2.3.9) leave even a connected socket untouched."""
    udp = Udp()
    sock = udp.connected()
    for icmp_type, code in ((3, 1), (3, 0), (11, 0)):
        udp.send(sock, b"x")
        udp.link.inject(icmp_error_about(udp.link.sent_one(), icmp_type, code))
    assert udp.getsockopt(sock, "SO_ERROR") is None
    assert udp.api.poll(sock, {"POLLIN", "POLLOUT"}) == {"POLLOUT"}


def test_ip_recverr_queues_the_error_with_its_fields() -> None:
    """ip(7) IP_RECVERR: sock_extended_err carries errno, origin, type, code, info and
    the offender; the message's address is the original destination and its data the
    original payload."""
    udp = Udp()
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, b"payload of the datagram")
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 3, 3, quoted_bytes=200))
    assert udp.api.poll(sock, set()) == {"POLLERR"}
    message = udp.recv(sock, 2000, {"MSG_ERRQUEUE"})
    assert message.error == ExtendedError(
        errno="ECONNREFUSED", origin="ICMP", type=3, code=3, info=0,
        offender=(PEER, 0), destination=(PEER, PEER_PORT), payload=b"payload of the datagram",
    )
    assert (message.data, message.address, message.flags) == (
        b"payload of the datagram", (PEER, PEER_PORT), ["MSG_ERRQUEUE"]
    )
    # Reading the queue cleared the pending error too (sock_dequeue_err_skb).
    assert udp.getsockopt(sock, "SO_ERROR") is None
    assert errno_of(udp.recv, sock, 2000, {"MSG_ERRQUEUE"}) == "EAGAIN"
    assert udp.api.poll(sock, set()) == set()


def test_ip_recverr_reports_soft_errors_on_unconnected_sockets() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, b"far away", (REMOTE_IP, PEER_PORT))
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 11, 0, src=ROUTER_IP),
                    src_mac=ROUTER_MAC)
    error = udp.error_queue(sock)
    assert (error.errno, error.origin, error.type, error.code) == ("EHOSTUNREACH", "ICMP", 11, 0)
    assert error.offender == (IPv4Address(ROUTER_IP), 0)
    assert error.destination == (IPv4Address(REMOTE_IP), PEER_PORT)
    assert error.payload == b""  # the router quoted 8 bytes of data: the UDP header only


def test_ip_recverr_info_is_the_next_hop_mtu() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, bytes(1000), (REMOTE_IP, PEER_PORT))
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 3, 4, src=ROUTER_IP, nexthopmtu=800),
                    src_mac=ROUTER_MAC)
    error = udp.error_queue(sock)
    assert (error.errno, error.type, error.code, error.info) == ("EMSGSIZE", 3, 4, 800)


def test_error_queue_is_read_in_order_and_truncates_to_the_buffer() -> None:
    udp = Udp()
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, b"0123456789")
    udp.send(sock, b"abcdefghij")
    first_sent, second_sent = udp.link.sent()
    udp.link.inject(icmp_error_about(first_sent, 3, 1, quoted_bytes=38))
    udp.link.inject(icmp_error_about(second_sent, 3, 3, quoted_bytes=38))
    first = udp.recv(sock, 4, {"MSG_ERRQUEUE"})
    assert (first.data, first.length, first.flags) == (b"0123", 10,
                                                       ["MSG_ERRQUEUE", "MSG_TRUNC"])
    assert first.error is not None and first.error.errno == "EHOSTUNREACH"
    assert udp.api.poll(sock, set()) == {"POLLERR"}
    second = udp.recv(sock, 100, {"MSG_ERRQUEUE"})
    assert second.data == b"abcdefghij"
    assert second.error is not None and second.error.errno == "ECONNREFUSED"
    assert udp.api.poll(sock, set()) == set()


def test_ip_recverr_error_also_fails_the_next_call() -> None:
    """Linux __udp4_lib_err: under IP_RECVERR every error also sets sk_err, soft or hard."""
    udp = Udp()
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, b"x")
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 3, 1))
    assert errno_of(udp.send, sock, b"y") == "EHOSTUNREACH"
    assert udp.error_queue(sock).errno == "EHOSTUNREACH"


# --- path MTU discovery modes -------------------------------------------------------------

def mode_socket(udp: Udp, mode: str) -> int:
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.setsockopt(sock, "IP_MTU_DISCOVER", mode)
    return sock


def test_pmtudisc_dont_sends_without_df_and_fragments() -> None:
    udp = Udp()
    sock = mode_socket(udp, "IP_PMTUDISC_DONT")
    udp.send(sock, b"small")
    assert str(udp.link.sent_one()[IP].flags) == ""
    udp.send(sock, bytes(2000))
    frames = udp.link.sent()
    assert [(len(f[IP]), str(f[IP].flags)) for f in frames] == [(1500, "MF"), (20 + 528, "")]


def test_pmtudisc_want_sets_df_while_the_datagram_fits_the_path() -> None:
    udp = Udp()
    sock = mode_socket(udp, "IP_PMTUDISC_WANT")
    udp.send(sock, bytes(1472))
    frame = udp.link.sent_one()
    assert (len(frame[IP]), str(frame[IP].flags)) == (1500, "DF")
    udp.send(sock, bytes(1473))
    assert [(len(f[IP]), str(f[IP].flags)) for f in udp.link.sent()] == [
        (1500, "MF"), (20 + 1481 - 1480, "")
    ]


def test_pmtudisc_want_fragments_above_a_learned_path_mtu() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.send(sock, bytes(1472), (REMOTE_IP, PEER_PORT))
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 3, 4, src=ROUTER_IP, nexthopmtu=1000),
                    src_mac=ROUTER_MAC)
    udp.send(sock, bytes(1472), (REMOTE_IP, PEER_PORT))
    assert [(len(f[IP]), str(f[IP].flags)) for f in udp.link.sent()] == [
        (996, "MF"), (20 + 1480 - 976, "")
    ]
    udp.send(sock, bytes(972), (REMOTE_IP, PEER_PORT))
    frame = udp.link.sent_one()
    assert (len(frame[IP]), str(frame[IP].flags)) == (1000, "DF")


@pytest.mark.parametrize("mode", ["IP_PMTUDISC_DO", "IP_PMTUDISC_PROBE"])
def test_pmtudisc_do_and_probe_refuse_a_datagram_above_the_mtu(mode: str) -> None:
    """RFC 1191 3 / ip(7): with DF required, sending more than the MTU fails with
    EMSGSIZE and, under IP_RECVERR, queues a local error whose info is the MTU."""
    udp = Udp()
    sock = mode_socket(udp, mode)
    udp.send(sock, bytes(1472))
    assert str(udp.link.sent_one()[IP].flags) == "DF"
    assert errno_of(udp.send, sock, bytes(1473)) == "EMSGSIZE"
    udp.link.sent_none()
    error = udp.error_queue(sock)
    assert (error.errno, error.origin, error.type, error.code, error.info) == (
        "EMSGSIZE", "LOCAL", 0, 0, 1500
    )
    assert error.offender is None
    # A local error is not an ICMP one: it leaves SO_ERROR alone.
    assert udp.getsockopt(sock, "SO_ERROR") is None


def test_pmtudisc_do_obeys_the_path_mtu_and_probe_the_link_mtu() -> None:
    udp = Udp()
    do, probe = udp.socket(), udp.socket()
    udp.setsockopt(do, "IP_MTU_DISCOVER", "IP_PMTUDISC_DO")
    udp.setsockopt(probe, "IP_MTU_DISCOVER", "IP_PMTUDISC_PROBE")
    udp.send(do, bytes(1472), (REMOTE_IP, PEER_PORT))
    udp.link.inject(icmp_error_about(udp.link.sent_one(), 3, 4, src=ROUTER_IP, nexthopmtu=1200),
                    src_mac=ROUTER_MAC)
    udp.getsockopt(do, "SO_ERROR")  # DO is not DONT: the unconnected socket gets nothing
    assert errno_of(udp.send, do, bytes(1200 - 27), (REMOTE_IP, PEER_PORT)) == "EMSGSIZE"
    udp.send(probe, bytes(1472), (REMOTE_IP, PEER_PORT))
    frame = udp.link.sent_one()
    assert (len(frame[IP]), str(frame[IP].flags)) == (1500, "DF")


def test_unknown_mtu_discovery_mode_is_invalid() -> None:
    udp = Udp()
    assert errno_of(udp.setsockopt, udp.socket(), "IP_MTU_DISCOVER", "IP_PMTUDISC_MAYBE") == (
        "EINVAL"
    )


def test_ip_mtu_needs_a_connected_socket() -> None:
    udp = Udp()
    assert errno_of(udp.getsockopt, udp.socket(LOCAL_PORT), "IP_MTU") == "ENOTCONN"
    assert udp.getsockopt(udp.connected(local_port=8), "IP_MTU") == 1500


# --- the receive buffer -------------------------------------------------------------------

def test_receive_buffer_limit_drops_and_counts() -> None:
    """socket(7): SO_RCVBUF is doubled and at least 2304; each datagram costs its
    payload and an overhead of 768 here, so two 100-byte datagrams fit and a third not."""
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.setsockopt(sock, "SO_RCVBUF", 1)
    assert udp.getsockopt(sock, "SO_RCVBUF") == 2304
    for n in range(4):
        udp.from_peer(bytes([n]) * 100)
    assert udp.link.drops()[-2:] == ["udp.receive_buffer_full", "udp.receive_buffer_full"]
    assert udp.api.snapshot(udp.link.now)["sockets"][0]["drops"] == 2
    assert [udp.recv(sock).data[:1] for _ in range(2)] == [b"\x00", b"\x01"]
    # Reading made room again.
    udp.from_peer(b"after")
    assert udp.recv(sock).data == b"after"
    udp.link.sent_none()  # a full buffer is no reason for an ICMP error


def test_so_rcvbuf_is_doubled_and_capped() -> None:
    udp = Udp()
    sock = udp.socket()
    udp.setsockopt(sock, "SO_RCVBUF", 10000)
    assert udp.getsockopt(sock, "SO_RCVBUF") == 20000
    udp.setsockopt(sock, "SO_RCVBUF", 10**9)
    assert udp.getsockopt(sock, "SO_RCVBUF") == 2 * 212992


# --- address resolution failure -----------------------------------------------------------

def test_unanswered_arp_reports_ehostunreach_in_the_error_queue() -> None:
    """RFC 1122 2.3.2.2 / Linux: after 3 requests 1 s apart the next hop is given up at
    3 s, and the socket hears it as a Host Unreachable from this host."""
    udp = Udp(neighbours=False)
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    start = udp.link.now
    udp.send(sock, b"anyone there")
    requests_at = []
    for deadline in (start + 1 * SECOND, start + 2 * SECOND):
        assert udp.link.host.next_timer() == deadline
        requests_at.append(len([f for f in udp.link.sent() if ARP in f]))
        udp.link.advance_to(deadline)
    requests_at.append(len([f for f in udp.link.sent() if ARP in f]))
    assert requests_at == [1, 1, 1]
    assert udp.link.host.next_timer() == start + 3 * SECOND

    udp.link.advance_to(start + 3 * SECOND - 1)
    assert errno_of(udp.recv, sock, 100, {"MSG_ERRQUEUE"}) == "EAGAIN"
    udp.link.advance_to(start + 3 * SECOND)
    udp.link.sent_none()
    error = udp.error_queue(sock)
    assert (error.errno, error.origin, error.type, error.code) == ("EHOSTUNREACH", "ICMP", 3, 1)
    assert error.offender == (DUT, 0)
    assert error.destination == (PEER, PEER_PORT)
    assert error.payload == b"anyone there"


def test_unanswered_arp_is_silent_without_ip_recverr() -> None:
    udp = Udp(neighbours=False)
    sock = udp.connected()
    udp.send(sock, b"anyone there")
    udp.link.advance(3 * SECOND)
    assert udp.getsockopt(sock, "SO_ERROR") is None
    assert udp.link.last_drop() == "arp.unresolved"


# --- poll ---------------------------------------------------------------------------------

def test_poll_reports_readable_writable_and_errors() -> None:
    udp = Udp()
    sock = udp.connected()
    everything = {"POLLIN", "POLLOUT", "POLLRDNORM", "POLLWRNORM"}
    assert udp.api.poll(sock, everything) == {"POLLOUT", "POLLWRNORM"}
    assert udp.api.poll(sock, {"POLLIN"}) == set()
    udp.from_peer(b"x")
    assert udp.api.poll(sock, everything) == everything
    udp.recv(sock)
    udp.send(sock, b"y")
    udp.refused(udp.link.sent_one())
    # POLLERR is reported whether asked for or not.
    assert udp.api.poll(sock, {"POLLIN"}) == {"POLLERR"}


def test_poll_on_a_closed_handle_is_pollnval() -> None:
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.api.close(sock, udp.link.now)
    assert udp.api.poll(sock, {"POLLIN"}) == {"POLLNVAL"}
    assert errno_of(udp.recv, sock) == "EBADF"
    # The port is free again and the datagram draws Port Unreachable.
    udp.from_peer(b"late")
    assert udp.link.sent_one()[ICMP].type == 3


def test_shutdown_read_makes_the_socket_readable_with_end_of_file() -> None:
    udp = Udp()
    sock = udp.connected()
    udp.api.shutdown(sock, "SHUT_RD")
    assert udp.api.poll(sock, {"POLLIN", "POLLRDHUP"}) == {"POLLIN", "POLLRDHUP"}
    assert udp.recv(sock).data == b""


# --- details where Linux is the reference -------------------------------------------------

def test_corked_data_keeps_the_destination_of_the_first_send() -> None:
    """Linux udp_sendmsg: while data is pending, a send appends to it and the address it
    names is ignored; the datagram goes where the first send said."""
    udp = Udp()
    sock = udp.socket(LOCAL_PORT)
    udp.send(sock, b"ab", (PEER_IP, PEER_PORT), {"MSG_MORE"})
    udp.send(sock, b"cd", (PEER2_IP, PEER_PORT + 1))
    frame = udp.link.sent_one()
    assert (frame[IP].dst, frame[UDP].dport, bytes(frame[UDP].payload)) == (
        PEER_IP, PEER_PORT, b"abcd"
    )


def test_explicit_bind_with_the_ephemeral_range_exhausted_is_eaddrinuse() -> None:
    """Linux: bind(port 0) fails with EADDRINUSE when no port is free; the implicit bind
    of a send fails with EAGAIN (inet_autobind)."""
    udp = Udp(Settings(ephemeral_ports=(40000, 40000)))
    udp.socket(0)
    assert errno_of(udp.api.bind, udp.socket(), ANY, 0) == "EADDRINUSE"
    assert errno_of(udp.send, udp.socket(), b"x", (PEER_IP, PEER_PORT)) == "EAGAIN"


def test_local_error_carries_no_payload_and_the_connected_port() -> None:
    """Linux ip_local_error: the queued skb holds only the destination address and the
    socket's connected port (0 when unconnected); no data comes with the error."""
    udp = Udp()
    connected = mode_socket(udp, "IP_PMTUDISC_DO")
    assert errno_of(udp.send, connected, bytes(1473)) == "EMSGSIZE"
    message = udp.recv(connected, 2000, {"MSG_ERRQUEUE"})
    assert (message.data, message.length, message.address) == (b"", 0, (PEER, PEER_PORT))
    unconnected = udp.socket(8)
    udp.setsockopt(unconnected, "IP_RECVERR", 1)
    udp.setsockopt(unconnected, "IP_MTU_DISCOVER", "IP_PMTUDISC_DO")
    assert errno_of(udp.send, unconnected, bytes(1473), (PEER2_IP, 9)) == "EMSGSIZE"
    message = udp.recv(unconnected, 2000, {"MSG_ERRQUEUE"})
    assert (message.data, message.address) == (b"", (IPv4Address(PEER2_IP), 0))


def test_reading_one_icmp_error_makes_the_next_one_pending() -> None:
    """Linux sock_dequeue_err_skb: when an ICMP error is dequeued and another follows,
    sk_err becomes the next one's errno; when none follows, it is cleared."""
    udp = Udp()
    sock = udp.connected()
    udp.setsockopt(sock, "IP_RECVERR", 1)
    udp.send(sock, b"one")
    udp.send(sock, b"two")
    first_sent, second_sent = udp.link.sent()
    udp.link.inject(icmp_error_about(first_sent, 3, 3))
    udp.link.inject(icmp_error_about(second_sent, 3, 1))
    assert udp.getsockopt(sock, "SO_ERROR") == "EHOSTUNREACH"
    assert udp.error_queue(sock).errno == "ECONNREFUSED"
    assert udp.getsockopt(sock, "SO_ERROR") == "EHOSTUNREACH"
    assert udp.error_queue(sock).errno == "EHOSTUNREACH"
    assert udp.getsockopt(sock, "SO_ERROR") is None


def test_reading_a_local_error_leaves_a_pending_icmp_error() -> None:
    udp = Udp()
    sock = mode_socket(udp, "IP_PMTUDISC_DO")
    assert errno_of(udp.send, sock, bytes(1473)) == "EMSGSIZE"
    udp.send(sock, b"small")
    udp.refused(udp.link.sent_one())
    assert udp.error_queue(sock).origin == "LOCAL"
    assert udp.getsockopt(sock, "SO_ERROR") == "ECONNREFUSED"
