"""Stack TCP: opening connections (RFC 9293 3.5, 3.10.7.1-3), with the virtual clock."""

from __future__ import annotations

from ipaddress import IPv4Address

from scapy.layers.inet import TCP
from scapy.packet import Packet, Raw

from stack.errors import SocketError
from stack.settings import Settings
from stack.tcp.state import State
from stack.timing import MILLISECOND, SECOND
from tests.stack_link import DUT_IP, PEER_IP, Link
from tests.stack_tcp import (
    DUT_PORT,
    PEER_ISN,
    PEER_PORT,
    Peer,
    connect_errno,
    established_active,
    established_passive,
    listening,
)


def mss_of(segment: TCP) -> int | None:
    return dict(segment.options).get("MSS")


# --- CLOSED: segments to a port nobody uses (RFC 9293 3.10.7.1) --------------------------

def test_syn_to_a_closed_port_draws_rst_ack_acknowledging_it() -> None:
    link = Link()
    peer = Peer(link)
    peer.send("S")
    rst = peer.received_one()
    assert rst.flags == "RA" and rst.seq == 0 and rst.ack == PEER_ISN + 1


def test_ack_to_a_closed_port_draws_rst_at_its_ack() -> None:
    link = Link()
    peer = Peer(link)
    peer.send("PA", b"data", ack=777)
    rst = peer.received_one()
    assert rst.flags == "R" and rst.seq == 777


def test_rst_to_a_closed_port_draws_nothing() -> None:
    link = Link()
    Peer(link).send("R")
    Peer(link).nothing_received()
    assert link.last_drop() == "tcp.no_socket"


def syn_with_raw_options(raw_options: bytes) -> Packet:
    """A SYN whose options area is ``raw_options``, however malformed."""
    syn = Peer(Link()).segment("S")
    syn[TCP].dataofs = 5 + len(raw_options) // 4
    return syn / Raw(raw_options)


def test_malformed_options_are_survived() -> None:
    """RFC 1122 4.2.2.5: an option length of zero, or one past the header, is survived;
    the options before it are kept (Linux tcp_parse_options)."""
    for raw, mss in ((b"\x02\x04\x05\x78\x08\x00\x00\x00", 1400),  # length zero
                     (b"\x02\x04\x05\x78\x08\x0a\x00\x00", 1400),  # past the header
                     (b"\x02\x03\x05\x78", 536)):  # MSS of the wrong length: ignored
        link = Link()
        listening(link)
        link.inject(syn_with_raw_options(raw))
        synack = Peer(link).received_one()
        assert synack.flags == "SA"
        (conn,) = link.host.tcp.connections.values()
        assert conn.mss == mss


# --- LISTEN (RFC 9293 3.10.7.2) ------------------------------------------------------------

def test_listener_answers_syn_with_synack_and_its_mss() -> None:
    link = Link()
    listening(link)
    peer = Peer(link)
    peer.send("S", options=[("MSS", 1000)])
    synack = peer.received_one()
    assert synack.flags == "SA" and synack.ack == PEER_ISN + 1
    assert mss_of(synack) == 1460  # RFC 9293 3.7.1: path MTU 1500 less 40


def test_listener_answers_an_ack_with_rst_and_ignores_rst() -> None:
    link = Link()
    listening(link)
    peer = Peer(link)
    peer.send("A", ack=4242)
    rst = peer.received_one()
    assert rst.flags == "R" and rst.seq == 4242
    peer.send("R")
    peer.nothing_received()


def test_synack_is_retransmitted_after_1s_then_2s_then_given_up() -> None:
    link = Link(Settings(tcp_synack_retries=2))
    listening(link)
    peer = Peer(link)
    peer.send("S")
    first = link.now
    peer.received_one()
    link.advance_to(first + SECOND - 1)
    peer.nothing_received()
    link.advance_to(first + SECOND)
    assert peer.received_one().flags == "SA"
    link.advance_to(first + 3 * SECOND - 1)
    peer.nothing_received()
    link.advance_to(first + 3 * SECOND)
    assert peer.received_one().flags == "SA"
    link.advance_to(first + 7 * SECOND)  # the last timeout: the embryo goes, silently
    peer.nothing_received()
    assert not link.host.tcp.connections


def test_passive_open_completes_and_accept_returns_the_peer() -> None:
    link = Link()
    listener = listening(link)
    peer = Peer(link)
    peer.open_to_listener()
    accepted = link.api.accept(listener)
    assert accepted.peer == (IPv4Address(PEER_IP), PEER_PORT)
    assert link.api.poll(accepted.handle, {"POLLOUT"}) == {"POLLOUT"}


def test_accept_on_an_empty_queue_is_eagain() -> None:
    link = Link()
    listener = listening(link)
    try:
        link.api.accept(listener)
    except SocketError as error:
        assert error.errno == "EAGAIN"
    else:
        raise AssertionError("accept returned without a connection")


# --- the accept queue (Linux accounting) -----------------------------------------------------

def fill(link: Link, count: int) -> list[Peer]:
    peers = [Peer(link, sport=41000 + n) for n in range(count)]
    for peer in peers:
        peer.send("S")
        assert peer.received_one().flags == "SA"
    return peers


def test_accept_queue_holds_backlog_plus_one_then_drops_the_final_ack() -> None:
    link = Link()
    listener = listening(link, backlog=2)
    peers = fill(link, 4)
    for peer in peers[:3]:
        peer.send("A")
    peers[3].send("A")
    assert link.last_drop() == "tcp.accept_queue_full"
    peers[3].nothing_received()
    # The SYN-ACK comes again on its timer, 1 s after the first.
    link.advance(SECOND)
    assert [s.flags for s in peers[3].received()] == ["SA"]
    # A SYN while the accept queue is full is dropped (Linux).
    extra = Peer(link, sport=42000)
    extra.send("S")
    extra.nothing_received()
    handles = [link.api.accept(listener).handle for _ in range(3)]
    assert len(handles) == 3


def test_accept_overflow_reset_policy_resets() -> None:
    link = Link(Settings(tcp_accept_overflow="reset"))
    listening(link, backlog=0)
    peers = fill(link, 2)
    peers[0].send("A")
    peers[1].send("A")
    assert peers[1].received_one().flags == "RA"


# --- SYN-SENT (RFC 9293 3.10.7.3) ------------------------------------------------------------

def test_connect_sends_syn_with_mss_and_completes() -> None:
    link, _peer, handle = established_active()
    sock = link.host.tcp.sockets[handle]
    assert sock.state is State.ESTABLISHED and sock.mss == 1460
    assert connect_errno(link, handle, PEER_PORT) == "EISCONN"


def test_syn_is_retransmitted_with_backoff_then_etimedout() -> None:
    link = Link(Settings(tcp_syn_retries=2))
    handle = link.api.socket("tcp")
    start = link.now
    assert connect_errno(link, handle) == "EINPROGRESS"
    assert connect_errno(link, handle) == "EALREADY"
    syn = link.sent()[0][TCP]
    assert syn.flags == "S" and mss_of(syn) == 1460
    times = []
    for _ in range(2):
        link.advance_to(link.host.tcp.next_timer() or 0)
        again = [frame[TCP] for frame in link.sent()]
        assert [s.flags for s in again] == ["S"] and again[0].seq == syn.seq
        times.append(link.now - start)
    assert times == [SECOND, 3 * SECOND]  # RFC 6298 2.1 and 5.5: 1 s, then doubled
    link.advance_to(start + 7 * SECOND)
    try:
        link.api.finish_connect(handle)
    except SocketError as error:
        assert error.errno == "ETIMEDOUT"
    else:
        raise AssertionError("connect did not time out")



def syn_sent() -> tuple[Link, int, Packet, Peer]:
    """A socket that sent its SYN (SYN-SENT), and the peer it went to."""
    link = Link()
    handle = link.api.socket("tcp")
    connect_errno(link, handle)
    syn = link.sent()[0][TCP]
    return link, handle, syn, Peer(link, sport=DUT_PORT, dport=syn.sport)


def test_rst_answering_syn_is_connection_refused() -> None:
    link, handle, syn, peer = syn_sent()
    peer.send("RA", seq=0, ack=syn.seq + 1)
    assert connect_errno(link, handle) == "ECONNREFUSED"
    assert link.api.poll(handle, {"POLLOUT"}) >= {"POLLOUT", "POLLHUP"}


def test_bad_ack_in_syn_sent_draws_rst_and_keeps_waiting() -> None:
    link, handle, syn, peer = syn_sent()
    peer.send("SA", ack=syn.seq + 1000)
    rst = peer.received_one()
    assert rst.flags == "R" and rst.seq == syn.seq + 1000
    assert link.host.tcp.sockets[handle].state is State.SYN_SENT


def test_simultaneous_open() -> None:
    link, handle, syn, peer = syn_sent()
    peer.flow.arrived(syn)
    peer.send("S")
    synack = peer.received_one()
    assert synack.flags == "SA" and synack.seq == syn.seq and synack.ack == PEER_ISN + 1
    assert link.host.tcp.sockets[handle].state is State.SYN_RECEIVED
    peer.send("A")
    assert link.api.finish_connect(handle)


def test_icmp_port_unreachable_aborts_a_connect() -> None:
    """Linux (RFC 1122 4.2.3.9 hard error): the connect fails with ECONNREFUSED."""
    from tests.stack_link import icmp_error_about

    link = Link()
    handle = link.api.socket("tcp")
    connect_errno(link, handle)
    syn = link.sent()[0]
    link.inject(icmp_error_about(syn, 3, 3))
    assert connect_errno(link, handle) == "ECONNREFUSED"


def test_delayed_ack_deadline_after_handshake_data() -> None:
    link, peer, _handle = established_passive()
    peer.send("PA", b"x" * 100)
    peer.nothing_received()
    link.advance(40 * MILLISECOND - 1)
    peer.nothing_received()
    link.advance(1)
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt


def test_bind_rules_with_a_listener() -> None:
    link = Link()
    first = listening(link)
    other = link.api.socket("tcp")
    link.api.setsockopt(other, "SO_REUSEADDR", 1, link.now)
    link.api.setsockopt(first, "SO_REUSEADDR", 1, link.now)
    try:
        link.api.bind(other, IPv4Address(DUT_IP), DUT_PORT)
    except SocketError as error:
        assert error.errno == "EADDRINUSE"  # a listener blocks the port even so (Linux)
    else:
        raise AssertionError("bound next to a listener")


def test_connect_to_a_broadcast_address_is_refused() -> None:
    """RFC 1122 4.2.3.10: no SYN to a broadcast or multicast address (Linux ENETUNREACH)."""
    link = Link()
    for address in ("192.0.2.255", "255.255.255.255", "224.0.0.1"):
        handle = link.api.socket("tcp")
        try:
            link.api.connect(handle, IPv4Address(address), DUT_PORT, link.now)
        except SocketError as error:
            assert error.errno == "ENETUNREACH", address
        else:
            raise AssertionError(f"connected to {address}")
    assert link.sent() == []


def test_simultaneous_open_completes_on_a_synack_repeating_the_syn() -> None:
    """The peer's SYN-ACK in a simultaneous open carries its ISN again (Linux)."""
    link, handle, syn, peer = syn_sent()
    peer.flow.arrived(syn)
    peer.send("S")
    peer.received_one()
    peer.send("SA", seq=PEER_ISN)
    assert link.api.finish_connect(handle)


# --- SYN-RECEIVED (a passive open) ---------------------------------------------------------

def embryo(link: Link) -> Peer:
    listening(link)
    peer = Peer(link)
    peer.send("S")
    assert peer.received_one().flags == "SA"
    return peer


def test_rst_in_passive_syn_received_removes_only_the_embryo() -> None:
    """RFC 9293 3.10.7.4: a passive open returns to LISTEN."""
    link = Link()
    peer = embryo(link)
    peer.send("R")
    peer.nothing_received()
    assert not link.host.tcp.connections
    again = Peer(link, sport=PEER_PORT + 1)
    again.send("S")
    assert again.received_one().flags == "SA"  # the listener still listens


def test_unacceptable_ack_in_syn_received_draws_rst() -> None:
    link = Link()
    peer = embryo(link)
    bad_ack = peer.rcv_nxt + 5000
    peer.send("A", ack=bad_ack)
    rst = peer.received_one()
    assert rst.flags == "R" and rst.seq == bad_ack


def test_repeated_syn_in_syn_received_brings_the_synack_again() -> None:
    link = Link()
    peer = embryo(link)
    peer.send("S", seq=PEER_ISN)
    assert peer.received_one().flags == "SA"


def test_data_with_the_final_ack_is_delivered() -> None:
    link = Link()
    listener = listening(link, port=DUT_PORT + 1)
    peer = Peer(link, dport=DUT_PORT + 1)
    peer.send("S")
    peer.received_one()
    peer.send("PA", b"early")
    handle = link.api.accept(listener).handle
    assert link.api.recvmsg(handle, 10, set()).data == b"early"
