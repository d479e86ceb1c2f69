"""The reference stack broken on purpose for the TCP cases about segment processing, one
behaviour at a time: opening (suites/rfc9293/test_handshake.py), segment arrival in every
synchronized state (test_segment_arrival.py), resets (test_reset.py) and TIME-WAIT
(test_time_wait.py). The user calls, closing, the accept queue and malformed segments are
broken in tests/broken_ref_tcp_calls.py.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of its TCP with a version that breaks one requirement, as a real buggy
stack would. The cases that check it must then fail (tests/test_tcp_cases_fail_on_broken_ref.py).
The stack runs in a process of its own, so replacing a function of a `stack.tcp` module
changes it for that stack alone; every caller looks it up on the module at call time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from stack.endpoints import Endpoint
from stack.errors import SocketError
from stack.host import Host
from stack.tcp import arrival, listener, output, seq, time_wait
from stack.tcp import layer as tcp_layer
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import SYNCHRONIZED, Event, State
from stack.timing import Nanoseconds
from stack.wire.ipv4 import IpProtocol, Ipv4Packet
from stack.wire.tcp import Mss, TcpFlags, TcpSegment

A, S, F, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST
TCP = IpProtocol.TCP


# ---- helpers ------------------------------------------------------------------------------


def _before_arrival(take: Callable[[TcpContext, TcpSocket, TcpSegment, Nanoseconds],
                                   TcpSegment | None]) -> None:
    """Every segment for a connection (not in TIME-WAIT) passes through ``take`` first: it
    returns the segment to process (perhaps changed), or None when it has dealt with it."""
    original = arrival.segment_arrives

    def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                        now: Nanoseconds) -> None:
        taken = take(tcp, sock, segment, now)
        if taken is not None:
            original(tcp, sock, taken, now)

    arrival.segment_arrives = segment_arrives


def _wrap_syn_sent(take: Callable[[TcpContext, TcpSocket, TcpSegment, Nanoseconds],
                                  TcpSegment | None]) -> None:
    """Like `_before_arrival`, for segments arriving in SYN-SENT."""
    original = arrival.syn_sent_arrives

    def syn_sent_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                         now: Nanoseconds) -> None:
        taken = take(tcp, sock, segment, now)
        if taken is not None:
            original(tcp, sock, taken, now)

    arrival.syn_sent_arrives = syn_sent_arrives


def _wrap_time_wait(decide: Callable[[TcpContext, TcpSocket, TcpSegment, Nanoseconds],
                                     bool | None]) -> None:
    """Segments in TIME-WAIT pass through ``decide`` first: True reopens, False drops,
    None leaves the segment to the stack."""
    original = time_wait.process

    def time_wait_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                          now: Nanoseconds) -> bool:
        decided = decide(tcp, sock, segment, now)
        return original(tcp, sock, segment, now) if decided is None else decided

    time_wait.process = time_wait_arrives


# ---- opening: RFC 9293 3.4, 3.5, 3.7.1, 3.10.7.2-3 ----------------------------------------


def syn_without_mss(host: Host) -> None:
    """SYN and SYN-ACK go out without the MSS option (RFC 9293 3.7.1, RFC 1122 4.2.2.6)."""
    original = output.emit

    def emit(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, **kwargs: Any) -> None:
        if S in kwargs["flags"]:
            kwargs["options"] = ()
        original(tcp, sock, now, **kwargs)

    output.emit = emit


def syn_not_counted_in_the_acknowledgement(host: Host) -> None:
    """An active open acknowledges the peer's ISN itself, not ISN+1: the SYN is not counted
    in the sequence space (RFC 9293 3.3.1, 3.10.7.3)."""
    original = arrival.take_peer_syn

    def take_peer_syn(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        original(tcp, sock, segment, now)
        sock.rcv_nxt = sock.rcv_adv = segment.seq

    arrival.take_peer_syn = take_peer_syn


def no_simultaneous_open(host: Host) -> None:
    """In SYN-SENT a SYN without ACK is dropped: no simultaneous open (RFC 9293 3.5)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if segment.flags & (S | A | R) == S:
            tcp.record_drop(now, "broken.crossing_syn_ignored")
            return None
        return segment

    _wrap_syn_sent(take)


def rst_in_active_syn_received_ignored(host: Host) -> None:
    """An RST in a SYN-RECEIVED reached by simultaneous open is dropped, leaving connect()
    waiting (RFC 9293 3.10.7.4 second: "connection refused")."""
    original = arrival.reset_arrives

    def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        if sock.state is State.SYN_RECEIVED and sock.parent is None:
            tcp.record_drop(now, "broken.rst_ignored")
            return
        original(tcp, sock, segment, now)

    arrival.reset_arrives = reset_arrives


def rst_in_passive_syn_received_closes_the_listener(host: Host) -> None:
    """An RST in a SYN-RECEIVED reached from LISTEN closes the listener along with the
    embryonic connection (RFC 9293 3.10.7.4 second: it returns to LISTEN)."""
    original = arrival.reset_arrives

    def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        parent = sock.parent if sock.state is State.SYN_RECEIVED else None
        original(tcp, sock, segment, now)
        if parent is not None and parent.state is State.LISTEN:
            listener.close_listener(tcp, parent, now)

    arrival.reset_arrives = reset_arrives


def rst_in_passive_syn_received_ignored(host: Host) -> None:
    """An RST in a SYN-RECEIVED reached from LISTEN is dropped: the embryonic connection
    lives on, its SYN-ACK retransmitted (RFC 9293 3.10.7.4 second: it returns to LISTEN)."""
    original = arrival.reset_arrives

    def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        if sock.state is State.SYN_RECEIVED and sock.parent is not None:
            tcp.record_drop(now, "broken.rst_ignored")
            return
        original(tcp, sock, segment, now)

    arrival.reset_arrives = reset_arrives


def rst_refusing_the_syn_ignored(host: Host) -> None:
    """In SYN-SENT an RST acknowledging the SYN is dropped: connect() waits on instead of
    failing (RFC 9293 3.10.7.3, 3.5.3)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if R in segment.flags:
            tcp.record_drop(now, "broken.rst_ignored")
            return None
        return segment

    _wrap_syn_sent(take)


def syn_sent_accepts_any_rst(host: Host) -> None:
    """In SYN-SENT an RST refuses the connection whatever its ACK field (RFC 9293 3.10.7.3:
    only one acknowledging the SYN is acceptable)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if R in segment.flags and A in segment.flags:
            return dataclasses.replace(segment, ack=sock.snd_nxt)
        return segment

    _wrap_syn_sent(take)


def bad_synack_silently_dropped(host: Host) -> None:
    """In SYN-SENT a SYN-ACK acknowledging something never sent is dropped without the
    <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.3)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        bad = seq.le(segment.ack, sock.iss) or seq.gt(segment.ack, sock.snd_max)
        if A in segment.flags and R not in segment.flags and bad:
            tcp.record_drop(now, "broken.bad_ack_dropped")
            return None
        return segment

    _wrap_syn_sent(take)


def isn_counted_per_connection(host: Host) -> None:
    """The ISN is a hash of the 4-tuple plus one per incarnation, without the clock: each
    incarnation starts higher, but by the same step however long ago the last one was
    (RFC 9293 3.4.1: a clock)."""
    original = host.tcp.isn.isn
    incarnations: dict[tuple[Endpoint, Endpoint], int] = {}

    def isn(local: Endpoint, remote: Endpoint, now: Nanoseconds) -> int:
        incarnations[local, remote] = incarnations.get((local, remote), 0) + 1
        return (original(local, remote, 0) + incarnations[local, remote]) % (1 << 32)

    host.tcp.isn.isn = isn  # type: ignore[method-assign]


def isn_from_a_global_counter(host: Host) -> None:
    """ISNs come from one counter for all connections, stepped by 64000 per connection as
    4.2BSD did: guessable (RFC 9293 3.4.1, RFC 6528: SHOULD add a keyed hash)."""
    counter = [host.rng.randrange(1 << 32)]

    def isn(local: Endpoint, remote: Endpoint, now: Nanoseconds) -> int:
        counter[0] = (counter[0] + 64000) % (1 << 32)
        return counter[0]

    host.tcp.isn.isn = isn  # type: ignore[method-assign]


def listen_refuses_a_port_in_use(host: Host) -> None:
    """listen() fails with EADDRINUSE on a port a connection already uses (RFC 9293
    3.9.1.1: a passive OPEN may share its local port with an active one)."""
    original = host.tcp.calls.listen

    def listen(sock: TcpSocket, backlog: int, now: Nanoseconds) -> None:
        if any(other is not sock and other.local_port == sock.local_port
               for other in host.tcp.connections.values()):
            raise SocketError("EADDRINUSE", "a connection uses the port")
        original(sock, backlog, now)

    host.tcp.calls.listen = listen  # type: ignore[method-assign]


def listen_resets_connections_on_its_port(host: Host) -> None:
    """listen() resets the connections that use its local port (RFC 9293 3.9.1.1: a new
    OPEN must not disturb the others)."""
    original = host.tcp.calls.listen

    def listen(sock: TcpSocket, backlog: int, now: Nanoseconds) -> None:
        for other in list(host.tcp.connections.values()):
            if other is sock or other.local_port != sock.local_port:
                continue
            output.send_reset(host.tcp, other, now)
            host.tcp.terminate(other, Event.ABORT, now, "ECONNRESET")
        original(sock, backlog, now)

    host.tcp.calls.listen = listen  # type: ignore[method-assign]


# ---- segment arrival in the synchronized states: RFC 9293 3.10.7.4 -------------------------


def unacceptable_segments_dropped_silently(host: Host) -> None:
    """An unacceptable segment is dropped without the ACK of <SEQ=SND.NXT><ACK=RCV.NXT>
    (RFC 9293 3.10.7.4 first check), TIME-WAIT included."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if sock.state in SYNCHRONIZED and R not in segment.flags and not arrival.acceptable(
                sock, segment):
            tcp.record_drop(now, "broken.unacceptable_not_acknowledged")
            return None
        return segment

    def decide(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
               now: Nanoseconds) -> bool | None:
        if segment.flags & (S | R) or arrival.acceptable(sock, segment):
            return None
        tcp.record_drop(now, "broken.unacceptable_not_acknowledged")
        return False

    _before_arrival(take)
    _wrap_time_wait(decide)


def rst_in_window_ignored(host: Host) -> None:
    """An RST exactly at RCV.NXT is dropped: nothing aborts a synchronized connection (RFC
    9293 3.10.7.4 second check)."""
    original = arrival.reset_arrives

    def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        if sock.state in SYNCHRONIZED:
            tcp.record_drop(now, "broken.rst_ignored")
            return
        original(tcp, sock, segment, now)

    arrival.reset_arrives = reset_arrives


def rst_accepted_at_any_sequence(host: Host) -> None:
    """An RST aborts a synchronized connection whatever its sequence number: no window
    check (RFC 9293 3.5.3, 3.10.7.4 first check)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if R in segment.flags and sock.state in SYNCHRONIZED:
            return dataclasses.replace(segment, seq=sock.rcv_nxt)
        return segment

    _before_arrival(take)


def syn_opens_a_new_connection(host: Host) -> None:
    """A SYN in a synchronized state is answered with a SYN-ACK, as if it opened a new
    connection (RFC 9293 3.10.7.4 fourth check)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if segment.flags & (S | A | R) == S and sock.state in SYNCHRONIZED:
            output.emit(tcp, sock, now, sequence=sock.iss, flags=S | A,
                        options=(Mss(sock.rcv_mss),))
            return None
        return segment

    _before_arrival(take)


def _fins_unacknowledged(which: Callable[[TcpSocket, TcpSegment], bool]) -> None:
    """No ACK goes out while the stack processes a FIN for which ``which`` holds."""
    original_arrives, original_ack = arrival.segment_arrives, output.send_ack
    within_fin = [False]

    def send_ack(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if not within_fin[0]:
            original_ack(tcp, sock, now)

    def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                        now: Nanoseconds) -> None:
        within_fin[0] = F in segment.flags and which(sock, segment)
        try:
            original_arrives(tcp, sock, segment, now)
        finally:
            within_fin[0] = False

    output.send_ack = send_ack
    arrival.segment_arrives = segment_arrives


def _fin_already_received(sock: TcpSocket, segment: TcpSegment) -> bool:
    return seq.lt(seq.add(segment.seq, len(segment.payload)), sock.rcv_nxt)


def fin_not_acknowledged(host: Host) -> None:
    """A new FIN is taken (the state moves on) but draws no ACK (RFC 9293 3.10.7.4 eighth
    check)."""
    _fins_unacknowledged(lambda sock, segment: not _fin_already_received(sock, segment))


def retransmitted_fin_not_acknowledged(host: Host) -> None:
    """A retransmission of a FIN already received draws no ACK (RFC 9293 3.10.7.4: the
    duplicate is acknowledged again, its ACK having been lost)."""
    _fins_unacknowledged(_fin_already_received)


def ack_of_unsent_data_accepted(host: Host) -> None:
    """A segment acknowledging data never sent is processed as if it acknowledged all that
    was, its data delivered (RFC 9293 3.10.7.4 fifth check: ACK it and drop it)."""
    original = arrival.ack_arrives

    def ack_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> bool:
        if seq.gt(segment.ack, sock.snd_max):
            segment = dataclasses.replace(segment, ack=sock.snd_max)
        return original(tcp, sock, segment, now)

    arrival.ack_arrives = ack_arrives


def out_of_order_segments_dropped(host: Host) -> None:
    """Segments beyond RCV.NXT are acknowledged and dropped, not held for when the gap
    fills (RFC 9293 3.10.7.4 seventh check, RFC 1122 4.2.2.20)."""
    original = arrival.text_arrives

    def text_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        if sock.state in arrival.RECEIVING_STATES and seq.gt(segment.seq, sock.rcv_nxt):
            output.send_ack(tcp, sock, now)
            tcp.record_drop(now, "broken.out_of_order_dropped")
            return
        original(tcp, sock, segment, now)

    arrival.text_arrives = text_arrives


# ---- resets: RFC 9293 3.4, 3.5.2, 3.5.3, 3.10.7.1-2; RFC 1122 4.2.2.12 ---------------------


def _reset_reply_changed(host: Host, change: Callable[[TcpSegment], TcpSegment]) -> None:
    original = host.tcp.send_reset_reply

    def send_reset_reply(segment: TcpSegment, local: Endpoint, remote: Endpoint,
                         now: Nanoseconds) -> None:
        original(change(segment), local, remote, now)

    host.tcp.send_reset_reply = send_reset_reply  # type: ignore[method-assign]


def reset_always_in_the_no_ack_form(host: Host) -> None:
    """A reset answering an ACK-bearing segment takes the form meant for one without ACK:
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (RFC 9293 3.10.7.1)."""
    _reset_reply_changed(host, lambda segment: dataclasses.replace(
        segment, flags=segment.flags & ~A))


def reset_acknowledges_only_the_syn(host: Host) -> None:
    """A reset answering a segment without ACK acknowledges SEG.SEQ+1 whatever the segment
    holds (RFC 9293 3.10.7.1: SEG.SEQ+SEG.LEN, data and FIN counted)."""
    _reset_reply_changed(host, lambda segment: dataclasses.replace(
        segment, payload=b"", flags=(segment.flags & ~F) | S) if A not in segment.flags
        else segment)


def reset_answers_a_reset(host: Host) -> None:
    """An RST for no connection is answered with a reset (RFC 9293 3.10.7.1: an incoming
    RST is discarded)."""
    original = host.tcp.receive

    def receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        original(packet, now, broadcast=broadcast)
        segment = tcp_layer.parse_segment(packet)
        if isinstance(segment, str) or R not in segment.flags:
            return
        local = (packet.header.dst, segment.dst_port)
        remote = (packet.header.src, segment.src_port)
        if (local, remote) not in host.tcp.connections and host.tcp.listener_for(
                local) is None:
            host.tcp.send_reset_reply(dataclasses.replace(segment, flags=segment.flags & ~R),
                                      local, remote, now)

    host.tcp.receive = receive  # type: ignore[method-assign]


def listener_answers_rst(host: Host) -> None:
    """A listener answers an RST with a reset (RFC 9293 3.10.7.2: it ignores it)."""
    original = listener.listen_arrives

    def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment, local: Endpoint,
                       remote: Endpoint, now: Nanoseconds, *, isn: int | None = None) -> None:
        if R in segment.flags:
            tcp.send_reset_reply(dataclasses.replace(segment, flags=segment.flags & ~R),
                                   local, remote, now)
            return
        original(tcp, sock, segment, local, remote, now, isn=isn)

    listener.listen_arrives = listen_arrives


def listener_ignores_ack(host: Host) -> None:
    """A listener drops an ACK-bearing segment silently (RFC 9293 3.10.7.2:
    <SEQ=SEG.ACK><CTL=RST>)."""
    original = listener.listen_arrives

    def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment, local: Endpoint,
                       remote: Endpoint, now: Nanoseconds, *, isn: int | None = None) -> None:
        if segment.flags & (A | R) == A:
            tcp.record_drop(now, "broken.ack_to_listener_ignored")
            return
        original(tcp, sock, segment, local, remote, now, isn=isn)

    listener.listen_arrives = listen_arrives


def rst_with_data_dropped(host: Host) -> None:
    """An RST carrying data is dropped as malformed (RFC 1122 4.2.2.12: SHOULD accept it)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if R in segment.flags and segment.payload:
            tcp.record_drop(now, "broken.rst_with_data")
            return None
        return segment

    _before_arrival(take)


def reset_reported_as_end_of_file(host: Host) -> None:
    """An RST closes the connection without an error: reads see end of file, not "connection
    reset" (RFC 9293 3.10.7.4 second check, 3.6)."""
    original = arrival.reset_arrives

    def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                      now: Nanoseconds) -> None:
        original(tcp, sock, segment, now)
        if sock.state is State.CLOSED and sock.error == "ECONNRESET":
            sock.error = None

    arrival.reset_arrives = reset_arrives


def rst_unacceptable_with_zero_window(host: Host) -> None:
    """With the receive window zero, an RST is taken as out of window and dropped (RFC 9293
    3.4: a zero window MUST NOT stop RST processing)."""

    def take(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
             now: Nanoseconds) -> TcpSegment | None:
        if R in segment.flags and seq.diff(sock.rcv_adv, sock.rcv_nxt) <= 0:
            tcp.record_drop(now, "broken.rst_with_zero_window")
            return None
        return segment

    _before_arrival(take)


# ---- TIME-WAIT: RFC 9293 3.6, 3.10.7.4; RFC 1122 4.2.2.13 ---------------------------------


def time_wait_ignores_a_retransmitted_fin(host: Host) -> None:
    """TIME-WAIT drops a retransmitted FIN without acknowledging it (RFC 9293 3.10.7.4:
    acknowledge it and restart the 2 MSL timeout)."""

    def decide(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
               now: Nanoseconds) -> bool | None:
        if segment.flags & (F | R) == F:
            tcp.record_drop(now, "broken.fin_in_time_wait_ignored")
            return False
        return None

    _wrap_time_wait(decide)


def time_wait_never_reopens(host: Host) -> None:
    """A SYN in TIME-WAIT is answered with the old connection's ACK, never reopens it (a
    choice RFC 1122 4.2.2.13 leaves open: MAY accept)."""

    def decide(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
               now: Nanoseconds) -> bool | None:
        if segment.flags & (S | A | R) == S:
            output.send_ack(tcp, sock, now)
            return False
        return None

    _wrap_time_wait(decide)


def any_syn_reopens_time_wait(host: Host) -> None:
    """Any SYN reopens a connection in TIME-WAIT, an old duplicate too (RFC 1122 4.2.2.13:
    only one above the old sequence space)."""

    def decide(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
               now: Nanoseconds) -> bool | None:
        return True if segment.flags & (S | A | R) == S else None

    _wrap_time_wait(decide)


def reopened_connection_reuses_the_old_isn(host: Host) -> None:
    """A connection reopened from TIME-WAIT starts at the old incarnation's ISN, inside its
    sequence space (RFC 1122 4.2.2.13: above the old one)."""
    original_terminate, original_listen_arrives = host.tcp.terminate, listener.listen_arrives
    old_isn: list[int] = []

    def terminate(sock: TcpSocket, event: Event, now: Nanoseconds, errno: str | None) -> None:
        if event is Event.REOPEN:
            old_isn[:] = [sock.iss]
        original_terminate(sock, event, now, errno)

    def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment, local: Endpoint,
                       remote: Endpoint, now: Nanoseconds, *, isn: int | None = None) -> None:
        if isn is not None and old_isn:
            isn = old_isn.pop()
        original_listen_arrives(tcp, sock, segment, local, remote, now, isn=isn)

    host.tcp.terminate = terminate  # type: ignore[method-assign]
    listener.listen_arrives = listen_arrives


def time_wait_frees_its_port(host: Host) -> None:
    """A connection in TIME-WAIT holds no port: bind() takes it without SO_REUSEADDR (a
    choice RFC 1122 4.2.2.13 leaves to the implementation)."""
    original = host.tcp.calls._holds_port

    def holds_port(sock: TcpSocket) -> bool:
        return sock.state is not State.TIME_WAIT and original(sock)

    host.tcp.calls._holds_port = holds_port  # type: ignore[method-assign]
