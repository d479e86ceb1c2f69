"""Stack TCP: every synchronized state against RST, SYN, FIN and unacceptable segments
(RFC 9293 3.10.7.4), closing (3.10.4, 3.6), TIME-WAIT, shutdown, SO_LINGER and
SO_REUSEADDR, with the virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

import pytest

from stack.errors import SocketError
from stack.settings import Settings
from stack.tcp.connection import TcpSocket
from stack.tcp.state import State
from stack.timing import SECOND
from tests.stack_link import DUT_IP, Link
from tests.stack_tcp import DUT_PORT, Peer, established_passive, listening


def connection(link: Link) -> TcpSocket:
    (conn,) = link.host.tcp.connections.values()
    return conn


def in_established() -> tuple[Link, Peer]:
    link, peer, _ = established_passive()
    return link, peer


def in_fin_wait_1() -> tuple[Link, Peer]:
    link, peer, handle = established_passive()
    link.api.close(handle, link.now)
    assert peer.received_one().flags == "FA"
    return link, peer


def in_fin_wait_2() -> tuple[Link, Peer]:
    link, peer = in_fin_wait_1()
    peer.send("A")
    return link, peer


def in_close_wait() -> tuple[Link, Peer]:
    link, peer, _ = established_passive()
    peer.send("FA")
    assert peer.received_one().flags == "A"
    return link, peer


def in_last_ack() -> tuple[Link, Peer]:
    link, peer, handle = established_passive()
    peer.send("FA")
    peer.received_one()
    link.api.close(handle, link.now)
    assert peer.received_one().flags == "FA"
    return link, peer


def in_closing() -> tuple[Link, Peer]:
    link, peer, handle = established_passive()
    link.api.close(handle, link.now)
    fin = peer.received_one()
    peer.send("FA", ack=fin.seq)  # our FIN crosses theirs, acknowledging nothing new
    assert peer.received_one().flags == "A"
    return link, peer


def in_time_wait(settings: Settings | None = None) -> tuple[Link, Peer]:
    link, peer, handle = established_passive(settings)
    link.api.close(handle, link.now)
    peer.received_one()
    peer.send("FA")
    assert peer.received_one().flags == "A"
    return link, peer


STATES: dict[State, Callable[[], tuple[Link, Peer]]] = {
    State.ESTABLISHED: in_established,
    State.FIN_WAIT_1: in_fin_wait_1,
    State.FIN_WAIT_2: in_fin_wait_2,
    State.CLOSE_WAIT: in_close_wait,
    State.LAST_ACK: in_last_ack,
    State.CLOSING: in_closing,
    State.TIME_WAIT: in_time_wait,
}


@pytest.mark.parametrize("state", list(STATES), ids=lambda state: state.value)
def test_reaching_the_state(state: State) -> None:
    link, _ = STATES[state]()
    assert connection(link).state is state


@pytest.mark.parametrize("state", list(STATES), ids=lambda state: state.value)
def test_rst_at_rcv_nxt_closes(state: State) -> None:
    link, peer = STATES[state]()
    peer.send("R")
    peer.nothing_received()
    assert not link.host.tcp.connections


@pytest.mark.parametrize("state", [s for s in STATES if s is not State.TIME_WAIT],
                         ids=lambda state: state.value)
def test_rst_elsewhere_in_the_window_draws_a_challenge_ack(state: State) -> None:
    """RFC 9293 3.10.7.4 (RFC 5961 3.2)."""
    link, peer = STATES[state]()
    peer.send("R", seq=peer.snd_nxt + 100)
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt
    assert connection(link).state is state


@pytest.mark.parametrize("state", [s for s in STATES if s is not State.TIME_WAIT],
                         ids=lambda state: state.value)
def test_syn_in_window_draws_a_challenge_ack(state: State) -> None:
    """RFC 9293 3.10.7.4 (RFC 5961 4.2)."""
    link, peer = STATES[state]()
    peer.send("S", seq=peer.snd_nxt + 10)
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt
    assert connection(link).state is state


@pytest.mark.parametrize("state", list(STATES), ids=lambda state: state.value)
def test_unacceptable_segment_draws_an_ack(state: State) -> None:
    link, peer = STATES[state]()
    peer.send("A", b"stale", seq=peer.snd_nxt - 50_000)
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt
    assert connection(link).state is state


@pytest.mark.parametrize("state", list(STATES), ids=lambda state: state.value)
def test_retransmitted_fin_is_acknowledged(state: State) -> None:
    _link, peer = STATES[state]()
    if state in (State.CLOSE_WAIT, State.LAST_ACK, State.CLOSING, State.TIME_WAIT):
        peer.send("FA", seq=peer.snd_nxt - 1)  # their FIN again
    else:
        peer.send("FA")  # their first FIN
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt


def test_fin_moves_each_state_as_the_diagram_says() -> None:
    expected = {State.ESTABLISHED: State.CLOSE_WAIT, State.FIN_WAIT_1: State.CLOSING,
                State.FIN_WAIT_2: State.TIME_WAIT}
    for before, after in expected.items():
        link, peer = STATES[before]()
        peer.send("FA", ack=peer.rcv_nxt - (before is State.FIN_WAIT_1))
        assert connection(link).state is after, before


def test_last_ack_closes_on_the_ack_of_its_fin() -> None:
    link, peer = in_last_ack()
    peer.send("A")
    assert not link.host.tcp.connections


def test_closing_goes_to_time_wait_on_the_ack_of_its_fin() -> None:
    link, peer = in_closing()
    peer.send("A")
    assert connection(link).state is State.TIME_WAIT


# --- TIME-WAIT -------------------------------------------------------------------------------

def test_time_wait_lasts_exactly_two_msl() -> None:
    link, _peer = in_time_wait()
    entered = link.now
    assert link.host.tcp.next_timer() == entered + 60 * SECOND
    link.advance_to(entered + 60 * SECOND - 1)
    assert connection(link).state is State.TIME_WAIT
    link.advance_to(entered + 60 * SECOND)
    assert not link.host.tcp.connections


def test_retransmitted_fin_restarts_time_wait() -> None:
    link, peer = in_time_wait()
    link.advance(10 * SECOND)
    peer.send("FA", seq=peer.snd_nxt - 1)
    peer.received_one()
    assert link.host.tcp.next_timer() == link.now + 60 * SECOND


def test_rst_in_time_wait_is_ignored_with_rfc1337() -> None:
    link, peer = in_time_wait(Settings(tcp_rfc1337=True))
    peer.send("R")
    assert connection(link).state is State.TIME_WAIT


def test_syn_above_the_old_sequence_reopens_with_a_higher_isn() -> None:
    link, peer = in_time_wait()
    old_snd_nxt = connection(link).snd_nxt
    peer.send("S", seq=peer.snd_nxt + 100_000)
    synack = peer.received_one()
    assert synack.flags == "SA"
    assert 0 < (synack.seq - old_snd_nxt) % (1 << 32) < (1 << 31)


def test_old_syn_in_time_wait_draws_an_ack() -> None:
    link, peer = in_time_wait()
    peer.send("S", seq=peer.isn)
    assert peer.received_one().flags == "A"
    assert connection(link).state is State.TIME_WAIT


def test_bind_to_a_time_wait_port_needs_so_reuseaddr_on_both() -> None:
    link, _peer = in_time_wait()
    for socket_option, errno in ((0, "EADDRINUSE"), (1, "EADDRINUSE")):
        handle = link.api.socket("tcp")
        link.api.setsockopt(handle, "SO_REUSEADDR", socket_option, link.now)
        with pytest.raises(SocketError) as raised:
            link.api.bind(handle, IPv4Address(DUT_IP), DUT_PORT)
        assert raised.value.errno == errno


def test_bind_to_a_time_wait_port_with_so_reuseaddr() -> None:
    link = Link()
    listener = link.api.socket("tcp")
    link.api.setsockopt(listener, "SO_REUSEADDR", 1, link.now)
    link.api.bind(listener, IPv4Address(DUT_IP), DUT_PORT)
    link.api.listen(listener, 4, link.now)
    peer = Peer(link)
    peer.open_to_listener()
    handle = link.api.accept(listener).handle
    link.api.close(handle, link.now)
    peer.received()
    peer.send("FA")
    link.api.close(listener, link.now)
    plain = link.api.socket("tcp")
    with pytest.raises(SocketError, match="EADDRINUSE"):
        link.api.bind(plain, IPv4Address(DUT_IP), DUT_PORT)
    reusing = link.api.socket("tcp")
    link.api.setsockopt(reusing, "SO_REUSEADDR", 1, link.now)
    link.api.bind(reusing, IPv4Address(DUT_IP), DUT_PORT)


# --- close, shutdown, SO_LINGER ------------------------------------------------------------

def test_close_with_unread_data_resets() -> None:
    """RFC 1122 4.2.2.13 / Linux: close with data unread sends RST."""
    link, peer, handle = established_passive()
    peer.send("PA", b"unread")
    link.api.close(handle, link.now)
    assert [s.flags for s in peer.received()] == ["RA"]
    assert not link.host.tcp.connections


def test_linger_zero_resets_on_close() -> None:
    link, peer, handle = established_passive()
    link.api.setsockopt(handle, "SO_LINGER", (1, 0), link.now)
    link.api.close(handle, link.now)
    assert peer.received_one().flags == "RA"


def test_linger_waits_for_the_ack_of_the_fin() -> None:
    link, peer, handle = established_passive()
    link.api.setsockopt(handle, "SO_LINGER", (1, 5), link.now)
    linger = link.api.close(handle, link.now)
    assert linger is not None and linger.deadline == link.now + 5 * SECOND
    assert not linger.done()
    peer.received()
    peer.send("A")
    assert linger.done()


def test_peer_reset_reports_econnreset_then_epipe_then_end_of_stream() -> None:
    link, peer, handle = established_passive()
    peer.send("R")
    with pytest.raises(SocketError, match="ECONNRESET"):
        link.api.sendto(handle, b"x", None, set(), link.now)
    with pytest.raises(SocketError, match="EPIPE"):
        link.api.sendto(handle, b"x", None, set(), link.now)
    assert link.api.recvmsg(handle, 10, set()).data == b""
    assert link.api.poll(handle, {"POLLIN", "POLLOUT"}) >= {"POLLHUP", "POLLIN"}


def test_shutdown_write_sends_fin_and_send_is_epipe() -> None:
    link, peer, handle = established_passive()
    link.api.shutdown(handle, "SHUT_WR", link.now)
    assert peer.received_one().flags == "FA"
    with pytest.raises(SocketError, match="EPIPE"):
        link.api.sendto(handle, b"x", None, set(), link.now)
    peer.send("PA", b"still flowing")
    assert link.api.recvmsg(handle, 100, set()).data == b"still flowing"


def test_shutdown_read_makes_an_empty_queue_read_end_of_stream() -> None:
    """As Linux: after SHUT_RD data still queued or arriving is read, then 0, never a
    blocking wait."""
    link, peer, handle = established_passive()
    peer.send("PA", b"queued")
    link.api.shutdown(handle, "SHUT_RD", link.now)
    assert "POLLRDHUP" in link.api.poll(handle, {"POLLRDHUP"})
    peer.send("PA", b" and more")
    assert link.api.recvmsg(handle, 100, set()).data == b"queued and more"
    assert link.api.recvmsg(handle, 100, set()).data == b""


def test_end_of_stream_after_fin() -> None:
    link, peer, handle = established_passive()
    peer.send("PA", b"last")
    peer.send("FA")
    assert link.api.recvmsg(handle, 100, set()).data == b"last"
    assert link.api.recvmsg(handle, 100, set()).data == b""
    assert "POLLRDHUP" in link.api.poll(handle, {"POLLIN", "POLLRDHUP"})


def test_orphan_in_fin_wait_2_goes_after_tcp_fin_timeout() -> None:
    link, _peer = in_fin_wait_2()
    link.advance(60 * SECOND - 1)
    assert connection(link).state is State.FIN_WAIT_2
    link.advance(1)
    assert not link.host.tcp.connections


def test_closing_a_listener_resets_unaccepted_connections() -> None:
    link = Link()
    listener = listening(link)
    peer = Peer(link)
    peer.open_to_listener()
    link.api.close(listener, link.now)
    assert peer.received_one().flags == "RA"
