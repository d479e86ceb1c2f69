"""Stack TCP: data transfer, acknowledgement, retransmission and windows, with the
virtual clock and exact deadlines."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP

from stack.errors import SocketError
from stack.settings import Settings
from stack.timing import MILLISECOND, SECOND
from tests.stack_link import icmp_error_about
from tests.stack_tcp import established_active, established_passive


def send(link, handle: int, data: bytes) -> int:  # type: ignore[no-untyped-def]
    return link.api.sendto(handle, data, None, set(), link.now)


def test_data_is_segmented_by_the_mss_within_the_initial_window() -> None:
    link, peer, handle = established_active()
    assert send(link, handle, b"a" * 5000) == 5000
    segments = peer.received()
    assert [len(bytes(s.payload)) for s in segments] == [1460, 1460, 1460, 620]


def test_peer_without_mss_option_gets_536_byte_segments() -> None:
    """RFC 9293 3.7.1 (MUST-15): no MSS option means 536."""
    from tests.stack_link import Link
    from tests.stack_tcp import Peer, listening

    link = Link()
    listener = listening(link)
    peer = Peer(link)
    peer.send("S")
    peer.received_one()
    peer.send("A")
    handle = link.api.accept(listener).handle
    send(link, handle, b"b" * 1000)
    assert [len(bytes(s.payload)) for s in peer.received()] == [536, 464]


def test_nagle_holds_a_small_segment_while_data_is_unacknowledged() -> None:
    """RFC 1122 4.2.3.4."""
    link, peer, handle = established_active()
    send(link, handle, b"first")
    assert len(peer.received()) == 1
    send(link, handle, b"second")
    peer.nothing_received()
    peer.send("A")
    (segment,) = peer.received()
    assert bytes(segment.payload) == b"second"


def test_tcp_nodelay_sends_at_once() -> None:
    link, peer, handle = established_active()
    link.api.setsockopt(handle, "TCP_NODELAY", 1, link.now)
    send(link, handle, b"first")
    send(link, handle, b"second")
    assert [bytes(s.payload) for s in peer.received()] == [b"first", b"second"]


def test_every_second_full_segment_is_acknowledged_at_once() -> None:
    """RFC 1122 4.2.3.2."""
    link, peer, _handle = established_passive()
    peer.send("A", b"x" * 1460)
    peer.nothing_received()
    peer.send("A", b"x" * 1460)
    ack = peer.received_one()
    assert ack.ack == peer.snd_nxt
    assert link.host.tcp.next_timer() is None  # no delayed ACK left pending


def test_out_of_order_segment_is_acknowledged_at_once_and_held() -> None:
    link, peer, handle = established_passive()
    start = peer.snd_nxt
    peer.send("A", b"B" * 10, seq=start + 10)
    dup = peer.received_one()
    assert dup.ack == start
    peer.send("A", b"A" * 10, seq=start)
    assert peer.received_one().ack == start + 20
    assert link.api.recvmsg(handle, 100, set()).data == b"A" * 10 + b"B" * 10


def test_unacceptable_segment_draws_an_ack() -> None:
    """RFC 9293 3.10.7.4: a segment outside the window is answered with an ACK."""
    _link, peer, _handle = established_passive()
    peer.send("A", b"old", seq=peer.snd_nxt - 1000)
    ack = peer.received_one()
    assert ack.flags == "A" and ack.ack == peer.snd_nxt


def test_retransmission_timeout_1s_then_doubling_then_r2_gives_up() -> None:
    """RFC 6298: 1 s before any sample (here the handshake gave one), back-off 5.5;
    RFC 1122 4.2.3.5: after R2 retransmissions the connection is aborted."""
    link, peer, handle = established_active(Settings(tcp_retries2=3))
    sock = link.host.tcp.sockets[handle]
    rto = sock.rto.rto
    assert rto == 200 * MILLISECOND  # a handshake RTT of 0: RTO is the 200 ms floor
    send(link, handle, b"data")
    first = link.now
    peer.received()
    deadlines = []
    for _ in range(3):
        due = link.host.tcp.next_timer()
        assert due is not None
        link.advance_to(due)
        (again,) = peer.received()
        assert bytes(again.payload) == b"data"
        deadlines.append(due - first)
    assert deadlines == [rto, 3 * rto, 7 * rto]
    link.advance_to(first + 15 * rto)
    try:
        link.api.recvmsg(handle, 10, set())
    except SocketError as error:
        assert error.errno == "ETIMEDOUT"
    else:
        raise AssertionError("the connection did not time out")


def test_three_duplicate_acks_start_a_fast_retransmit() -> None:
    """RFC 5681 3.2."""
    link, peer, handle = established_active()
    send(link, handle, b"z" * 1460 * 4)
    segments = peer.received()
    first = segments[0].seq
    for _ in range(3):
        peer.send("A", ack=first)
    (again,) = peer.received()
    assert again.seq == first and len(bytes(again.payload)) == 1460


def test_zero_window_is_probed_with_backoff() -> None:
    """RFC 1122 4.2.2.17: probes while the window is zero, the interval doubling."""
    link, peer, handle = established_active()
    sock = link.host.tcp.sockets[handle]
    peer.send("A", window=0)
    send(link, handle, b"waiting")
    peer.nothing_received()
    start, rto = link.now, sock.rto.rto
    times = []
    for _ in range(3):
        due = link.host.tcp.next_timer()
        assert due is not None
        link.advance_to(due)
        (probe,) = peer.received()
        assert probe.seq == sock.snd_una - 1 and not bytes(probe.payload)
        peer.send("A", window=0)
        times.append(link.now - start)
    assert times == [rto, 3 * rto, 7 * rto]
    peer.send("A", window=1000)
    (data,) = peer.received()
    assert bytes(data.payload) == b"waiting"


def test_receive_window_closes_and_reopens_with_an_update() -> None:
    link, peer, handle = established_passive()
    link.api.setsockopt(handle, "SO_RCVBUF", 2304, link.now)  # room: 4608 bytes
    sock = link.host.tcp.sockets[handle]
    sock.rcv_adv = sock.rcv_nxt + 4608  # as if the small buffer had been there all along
    for _ in range(4):
        peer.send("A", b"w" * 1152)
    link.advance(40 * MILLISECOND)  # the delayed ACK
    window = [s.window for s in peer.received()][-1]
    assert window == 0
    assert link.api.recvmsg(handle, 4608, set()).data == b"w" * 4608
    update = peer.received_one()
    assert update.window == 4608


def test_path_mtu_drop_lowers_the_mss_and_resends_at_once() -> None:
    """RFC 1191 / RFC 9293 3.7.2."""
    link, _peer, handle = established_active()
    send(link, handle, b"m" * 1460)
    (segment,) = link.sent()
    link.inject(icmp_error_about(segment, 3, 4, src="192.0.2.254", nexthopmtu=1000,
                                 quoted_bytes=28))
    again = [frame[TCP] for frame in link.sent()]
    assert [len(bytes(s.payload)) for s in again] == [960, 500]
    assert link.api.getsockopt(handle, "TCP_MAXSEG", link.now) == 960


def test_soft_icmp_error_goes_to_so_error_without_abort() -> None:
    """RFC 1122 4.2.3.9: a soft error in ESTABLISHED does not abort."""
    link, _peer, handle = established_active()
    send(link, handle, b"q")
    (segment,) = link.sent()
    link.inject(icmp_error_about(segment, 3, 1, src="192.0.2.254"))
    assert link.api.getsockopt(handle, "SO_ERROR", link.now) == "EHOSTUNREACH"
    assert link.api.getsockopt(handle, "SO_ERROR", link.now) is None
    assert send(link, handle, b"more") == 4


def test_keepalive_off_by_default_and_probes_when_on() -> None:
    """RFC 1122 4.2.3.6: off by default; idle 7200 s, then every 75 s, 9 probes."""
    link, peer, handle = established_active()
    assert link.api.getsockopt(handle, "SO_KEEPALIVE", link.now) == 0
    assert link.host.tcp.next_timer() is None
    link.api.setsockopt(handle, "SO_KEEPALIVE", 1, link.now)
    start = link.now
    assert link.host.tcp.next_timer() == start + 7200 * SECOND
    link.advance_to(start + 7200 * SECOND)
    probe = peer.received_one()
    assert probe.flags == "A" and not bytes(probe.payload)
    assert link.host.tcp.next_timer() == start + 7275 * SECOND
    peer.send("A")  # answered: idle again
    assert link.host.tcp.next_timer() == link.now + 7200 * SECOND


def test_keepalive_gives_up_after_the_probe_count() -> None:
    link, peer, handle = established_active(Settings(tcp_keepalive_probes=2))
    link.api.setsockopt(handle, "SO_KEEPALIVE", 1, link.now)
    link.api.setsockopt(handle, "TCP_KEEPIDLE", 10, link.now)
    link.api.setsockopt(handle, "TCP_KEEPINTVL", 5, link.now)
    start = link.now
    link.advance_to(start + 20 * SECOND)
    assert [s.flags for s in peer.received()] == ["A", "A", "RA"]
    assert link.api.getsockopt(handle, "SO_ERROR", link.now) == "ETIMEDOUT"


def test_user_timeout_aborts_at_its_deadline() -> None:
    """TCP_USER_TIMEOUT (RFC 5482, Linux): R2 as a time, the last timer clamped to it."""
    link, peer, handle = established_active()
    link.api.setsockopt(handle, "TCP_USER_TIMEOUT", 1000, link.now)
    send(link, handle, b"never acknowledged")
    first = link.now
    peer.received()
    link.advance_to(first + SECOND - 1)
    assert link.api.poll(handle, {"POLLIN"}) == set()
    link.advance_to(first + SECOND)
    with pytest.raises(SocketError, match="ETIMEDOUT"):
        link.api.recvmsg(handle, 10, set())


def test_urgent_data_is_taken_out_of_the_stream_and_signalled() -> None:
    """RFC 9293 3.8.5: the urgent pointer points after the urgent data; as Linux, the
    last urgent octet is read with MSG_OOB and POLLPRI tells of it."""
    link, peer, handle = established_passive()
    segment = peer.segment("PAU", b"abc")
    segment[TCP].urgptr = 3
    link.inject(segment)
    peer.flow.sent("PAU", b"abc")
    assert link.api.poll(handle, {"POLLPRI"}) == {"POLLPRI"}
    assert link.api.recvmsg(handle, 10, {"MSG_OOB"}).data == b"c"
    assert link.api.recvmsg(handle, 10, set()).data == b"ab"


def test_msg_oob_sends_urg_with_the_pointer_after_the_data() -> None:
    link, peer, handle = established_active()
    link.api.sendto(handle, b"xyz", None, {"MSG_OOB"}, link.now)
    (segment,) = peer.received()
    assert "U" in str(segment.flags) and segment.urgptr == 3


def test_ecn_is_agreed_when_the_syn_asks_for_it() -> None:
    """RFC 3168 6.1.1, Linux tcp_ecn = 2."""
    from tests.stack_link import Link
    from tests.stack_tcp import Peer, listening

    link = Link()
    listening(link)
    peer = Peer(link)
    peer.send("SEC")
    synack = peer.received_one()
    assert str(synack.flags) == "SAE"


def test_hard_icmp_error_aborts_an_established_connection() -> None:
    """RFC 1122 4.2.3.9 (SHOULD); Linux keeps it soft (tcp_hard_error_aborts=0)."""
    for aborts, outcome in ((True, "ECONNREFUSED"), (False, "EAGAIN")):
        link, _peer, handle = established_active(Settings(tcp_hard_error_aborts=aborts))
        send(link, handle, b"q")
        (segment,) = link.sent()
        link.inject(icmp_error_about(segment, 3, 3))
        with pytest.raises(SocketError) as raised:
            link.api.recvmsg(handle, 10, {"MSG_DONTWAIT"})
        assert raised.value.errno == outcome
