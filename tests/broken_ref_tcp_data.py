"""The reference stack broken on purpose for the TCP data, window, timing and error cases,
one behaviour at a time (suites/rfc9293/test_data_transfer.py, test_window.py,
test_retransmission.py, test_delayed_ack_nagle.py, test_keepalive.py); the ICMP, path MTU
and address cases (test_tcp_icmp_pmtu.py) have theirs in tests/broken_ref_tcp_icmp.py.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of it, the narrowest that holds the behaviour, with what a buggy stack
would do; everything else keeps working. The stack's TCP modules call each other as
``output.<function>``, ``arrival.<function>`` and ``timers.<function>``, so replacing a
module attribute reaches every caller (the stack runs in a process of its own). The cases
that check the requirement must then fail (tests/test_tcp_data_cases_fail_on_broken_ref.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from typing import Any

from stack.host import Host
from stack.tcp import arrival, congestion, output, seq, timers
from stack.tcp.connection import MAX_WINDOW, TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State
from stack.timing import Nanoseconds
from stack.wire.ipv4 import IpProtocol, Ipv4OptionKind, Ipv4Packet, parse_ipv4_options
from stack.wire.tcp import TcpFlags, TcpSegment

A, S, P, R, URG = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.PSH, TcpFlags.RST, TcpFlags.URG
TCP = IpProtocol.TCP


# ---- helpers ------------------------------------------------------------------------------


def _wrap_emit(rewrite: Callable[[TcpSocket, dict[str, Any]], None]) -> None:
    """Every segment a connection builds passes its keyword arguments (sequence, flags,
    payload, options) through ``rewrite`` first."""
    original = output.emit

    def emit(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, **kwargs: Any) -> None:
        rewrite(sock, kwargs)
        original(tcp, sock, now, **kwargs)

    output.emit = emit


def _rewrite_tcp_datagrams(host: Host, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """The IP parameters (ttl, tos, dont_fragment) of every TCP datagram the host sends
    pass through ``rewrite``."""
    original = host.send_datagram

    def send_datagram(now: Nanoseconds, destination: IPv4Address, payload: bytes,
                      **kwargs: Any) -> None:
        if kwargs.get("protocol") == TCP:
            rewrite(kwargs)
        original(now, destination, payload, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


@contextmanager
def _temporarily(sock: TcpSocket, **values: Any) -> Iterator[None]:
    """Attributes of ``sock`` (or its options, for upper-case names) set for a while."""
    saved = {name: sock.options[name] if name.isupper() else getattr(sock, name)
             for name in values}
    for name, value in values.items():
        if name.isupper():
            sock.options[name] = value
        else:
            setattr(sock, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if name.isupper():
                sock.options[name] = value
            else:
                setattr(sock, name, value)


def _wrap_transmit(around: Callable[[TcpSocket], Any]) -> None:
    """``output.transmit`` runs inside the context manager ``around(sock)`` gives."""
    original = output.transmit

    def transmit(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, **kwargs: Any) -> None:
        with around(sock):
            original(tcp, sock, now, **kwargs)

    output.transmit = transmit


# ---- data transfer (RFC 9293 3.7.1, 3.9.1, 3.9.2, 3.10.7.4) --------------------------------


def no_psh_on_data(host: Host) -> None:
    """Data segments never carry PSH, not even the last of a write (RFC 9293 3.9.1.2:
    MUST set PSH in the last buffered segment)."""

    def rewrite(sock: TcpSocket, segment: dict[str, Any]) -> None:
        segment["flags"] &= ~P

    _wrap_emit(rewrite)


def out_of_order_segments_dropped(host: Host) -> None:
    """A segment beyond RCV.NXT is acknowledged and thrown away, not queued (RFC 9293
    3.10.7.4: SHOULD be held for later processing)."""
    original = arrival.text_arrives

    def text_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        if sock.state in arrival.RECEIVING_STATES and seq.gt(segment.seq, sock.rcv_nxt):
            output.send_ack(tcp, sock, now)
            tcp.record_drop(now, "broken.out_of_order_dropped", str(segment.seq))
            return
        original(tcp, sock, segment, now)

    arrival.text_arrives = text_arrives


def gap_filler_acknowledged_before_the_queue(host: Host) -> None:
    """A segment that fills a gap is acknowledged on its own first, and only then the
    queued segments it makes in order are processed (RFC 9293 3.10.7.4: MUST process
    them before sending any acknowledgement)."""
    original = arrival.text_arrives

    def text_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        if not (sock.out_of_order and segment.payload and segment.seq == sock.rcv_nxt):
            original(tcp, sock, segment, now)
            return
        queued, sock.out_of_order = sock.out_of_order, {}
        sock.ack_now = True
        original(tcp, sock, segment, now)  # the filler alone, acknowledged at once
        sock.out_of_order = queued
        empty = dataclasses.replace(segment, seq=sock.rcv_nxt, payload=b"",
                                    flags=segment.flags & ~TcpFlags.FIN)
        original(tcp, sock, empty, now)  # now the queue

    arrival.text_arrives = text_arrives


def peer_mss_ignored(host: Host) -> None:
    """The peer's MSS option is read but not honoured: segments are as large as the path
    MTU allows (RFC 9293 3.7.1: MUST-14, MUST-16)."""
    tcp = host.tcp
    original = tcp.update_mss

    def update_mss(sock: TcpSocket, now: Nanoseconds) -> None:
        if sock.peer_mss is None:
            original(sock, now)
            return
        with _temporarily(sock, peer_mss=65535):
            original(sock, now)

    tcp.update_mss = update_mss  # type: ignore[method-assign]


def bulk_data_in_half_segments(host: Host) -> None:
    """A bulk write goes out in segments of half the MSS (RFC 9293 3.9.1.2: SHOULD send
    full-sized segments)."""
    _wrap_transmit(lambda sock: _temporarily(sock, mss=max(sock.mss // 2, 1)))


def syn_without_mss_option(host: Host) -> None:
    """SYN and SYN-ACK carry no MSS option (RFC 9293 3.7.1: MUST-14 sends it; SHLD-5)."""

    def rewrite(sock: TcpSocket, segment: dict[str, Any]) -> None:
        if S in segment["flags"]:
            segment["options"] = ()

    _wrap_emit(rewrite)


def unknown_ip_option_drops_the_segment(host: Host) -> None:
    """A TCP segment in a datagram carrying an IP option the stack does not know is
    dropped (RFC 1122 4.2.3.8, RFC 9293 3.9.2: MUST ignore options it does not
    understand)."""
    tcp = host.tcp
    original = tcp.receive
    known = {int(kind) for kind in Ipv4OptionKind}

    def receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        kinds = {option.kind for option in parse_ipv4_options(packet.header.options)}
        if kinds - known:
            tcp.record_drop(now, "broken.unknown_ip_option")
            return
        original(packet, now, broadcast=broadcast)

    tcp.receive = receive  # type: ignore[method-assign]


def ip_ttl_ignored_by_tcp(host: Host) -> None:
    """IP_TTL is accepted on a TCP socket, but segments keep the default TTL (RFC 9293
    3.9.2: MUST let the application set the TTL)."""

    def rewrite(datagram: dict[str, Any]) -> None:
        datagram["ttl"] = host.settings.default_ttl

    _rewrite_tcp_datagrams(host, rewrite)


def ip_tos_ignored_by_tcp(host: Host) -> None:
    """IP_TOS is accepted on a TCP socket, but segments carry DS field 0 (RFC 9293
    3.9.1.9: MUST let the application set it)."""

    def rewrite(datagram: dict[str, Any]) -> None:
        datagram["tos"] = 0

    _rewrite_tcp_datagrams(host, rewrite)


def ip_tos_fixed_at_first_use(host: Host) -> None:
    """The DS field a connection first sends with stays, whatever IP_TOS says later (RFC
    9293 3.9.1.9: SHOULD let it change during the connection)."""
    original = output.send_segment
    first: dict[int, int] = {}

    def send_segment(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        tos = sock.option("IP_TOS")
        if tos:
            tos = first.setdefault(id(sock), tos)
        with _temporarily(sock, IP_TOS=tos):
            original(tcp, sock, segment, now)

    output.send_segment = send_segment


def urgent_data_sent_as_normal_data(host: Host) -> None:
    """MSG_OOB data goes out without URG and urgent pointer (RFC 9293 3.8.5: MUST-30,
    MUST-62)."""
    original = output.send_segment

    def send_segment(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        plain = dataclasses.replace(segment, flags=segment.flags & ~URG, urgent_pointer=0,
                                    checksum=None)
        original(tcp, sock, plain, now)

    output.send_segment = send_segment


def urgent_pointer_ignored(host: Host) -> None:
    """URG and the urgent pointer of arriving segments are ignored: the application is
    never told of urgent data (RFC 9293 3.8.5: MUST-31)."""
    original = arrival.segment_arrives

    def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                        now: Nanoseconds) -> None:
        plain = dataclasses.replace(segment, flags=segment.flags & ~URG, urgent_pointer=0,
                                    checksum=None)
        original(tcp, sock, plain, now)

    arrival.segment_arrives = segment_arrives


# ---- windows (RFC 9293 3.8.6, RFC 1122 4.2.2.16, 4.2.2.17, 4.2.3.3, 4.2.3.4) ---------------


def _usable_window(sock: TcpSocket) -> int:
    return seq.diff(seq.add(sock.snd_una, sock.snd_wnd), sock.snd_nxt)


def zero_window_never_probed(host: Host) -> None:
    """A zero window is waited out without probes (RFC 1122 4.2.2.17: MUST probe)."""
    original = timers.persist_timeout

    def persist_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if _usable_window(sock) <= 0:
            sock.persist_at = None
            return
        original(tcp, sock, now)

    timers.persist_timeout = persist_timeout


def zero_window_probes_at_a_fixed_interval(host: Host) -> None:
    """Zero-window probes follow each other at one RTO, without backing off (RFC 1122
    4.2.2.17: SHOULD increase the interval exponentially)."""
    original = timers.persist_timeout

    def persist_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        original(tcp, sock, now)
        if sock.persist_at is not None:
            sock.persist_backoff = 0
            sock.persist_at = now + sock.rto.rto

    timers.persist_timeout = persist_timeout


def sender_fills_small_windows(host: Host) -> None:
    """The sender sends whatever the window allows at once, however small (RFC 1122
    4.2.3.4, RFC 9293 3.8.6.2.1: MUST avoid the silly window syndrome)."""
    _wrap_transmit(lambda sock: _temporarily(sock, max_snd_wnd=0))


def small_window_never_used(host: Host) -> None:
    """A window too small for a full segment is waited out: the override timeout never
    sends into it, so the data waits for a window the peer may never offer (RFC 1122
    4.2.3.4: MUST send it when the override timeout fires)."""
    original = timers.persist_timeout

    def persist_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if _usable_window(sock) > 0:
            sock.persist_at = None
            return
        original(tcp, sock, now)

    timers.persist_timeout = persist_timeout


def _advertise(compute: Callable[[TcpSocket], int]) -> None:
    def advertised_window(sock: TcpSocket) -> int:
        window = max(0, min(compute(sock), MAX_WINDOW))
        sock.rcv_adv = seq.add(sock.rcv_nxt, window)
        return window

    output.advertised_window = advertised_window


def window_shrinks_as_data_arrives(host: Host) -> None:
    """Buffered data is counted twice against the receive buffer (as if its overhead were
    as large as the data), so the right window edge moves left as data arrives (RFC 9293
    3.8.6: SHOULD NOT shrink the window)."""
    _advertise(lambda sock: sock.receive_space - len(sock.receive_buffer))


def receiver_opens_silly_windows(host: Host) -> None:
    """The window advertised is the free buffer space, however small the opening (RFC 1122
    4.2.3.3: MUST avoid the silly window syndrome)."""
    _advertise(lambda sock: sock.receive_space)


def resets_on_a_shrunk_window(host: Host) -> None:
    """An ACK whose window ends before SND.NXT is taken as a protocol violation: the
    connection is reset (RFC 1122 4.2.2.16: MUST be robust against shrinking windows)."""
    original = arrival.ack_arrives

    def ack_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> bool:
        goes_on = original(tcp, sock, segment, now)
        if goes_on and sock.state in output.SENDING_STATES and _usable_window(sock) < 0:
            output.send_reset(tcp, sock, now)
            tcp.terminate(sock, Event.ABORT, now, "ECONNRESET")
            return False
        return goes_on

    arrival.ack_arrives = ack_arrives


def sends_into_the_old_window_after_a_shrink(host: Host) -> None:
    """A window that shrinks is not believed: the sender keeps the old right edge and
    sends new data up to it (RFC 9293 3.8.6: SHOULD NOT send new data beyond the
    shrunk window)."""
    original = arrival.ack_arrives

    def ack_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> bool:
        edge = seq.add(sock.snd_una, sock.snd_wnd)
        goes_on = original(tcp, sock, segment, now)
        if sock.state in output.SENDING_STATES and seq.lt(
                seq.add(sock.snd_una, sock.snd_wnd), edge):
            sock.snd_wnd = seq.diff(edge, sock.snd_una)
        return goes_on

    arrival.ack_arrives = ack_arrives


def rewinds_into_the_old_window_after_a_shrink(host: Host) -> None:
    """A window that shrinks is not believed: when new data is written, the sender goes
    back half a segment past SND.UNA and sends from there up to the old right edge, in
    segments that do not start where the new data starts (RFC 9293 3.8.6: SHOULD NOT
    send new data beyond the shrunk window)."""
    original_ack_arrives, original_transmit = arrival.ack_arrives, output.transmit
    old_edges: dict[int, int] = {}

    def ack_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> bool:
        edge = seq.add(sock.snd_una, sock.snd_wnd)
        goes_on = original_ack_arrives(tcp, sock, segment, now)
        if sock.state in output.SENDING_STATES and seq.lt(
                seq.add(sock.snd_una, sock.snd_wnd), edge):
            old_edges[id(sock)] = edge
        return goes_on

    def transmit(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, **kwargs: Any) -> None:
        edge = old_edges.get(id(sock))
        if edge is not None and len(sock.send_buffer) > seq.diff(sock.snd_max,
                                                                  sock.send_start):
            del old_edges[id(sock)]
            sock.snd_wnd = seq.diff(edge, sock.snd_una)
            sock.snd_nxt = seq.add(sock.snd_una, sock.mss // 2)
        original_transmit(tcp, sock, now, **kwargs)

    arrival.ack_arrives = ack_arrives
    output.transmit = transmit


# ---- retransmission (RFC 9293 3.8.1-3.8.3, RFC 1122 4.2.3.1, 4.2.3.5) ------------------------


def _retransmit_without_backoff(syn: bool) -> None:
    original = timers.retransmission_timeout

    def retransmission_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if sock.syn_unacknowledged is not syn:
            original(tcp, sock, now)
            return
        rto = sock.rto.rto
        original(tcp, sock, now)
        sock.rto.rto = rto  # as it was before the timeout
        if sock.retransmit_at is not None:
            sock.retransmit_at = now + rto

    timers.retransmission_timeout = retransmission_timeout


def syn_retransmitted_at_a_fixed_interval(host: Host) -> None:
    """An unanswered SYN is sent again every RTO without backing off (RFC 1122 4.2.3.1:
    MUST use exponential backoff)."""
    _retransmit_without_backoff(syn=True)


def data_retransmitted_at_a_fixed_interval(host: Host) -> None:
    """Unacknowledged data is sent again every RTO without backing off (RFC 1122 4.2.3.1,
    RFC 6298 5.5: MUST use exponential backoff)."""
    _retransmit_without_backoff(syn=False)


def slow_start_grows_twice_as_fast(host: Host) -> None:
    """In slow start every ACK grows cwnd by twice what RFC 5681 3.1 with RFC 3465 allows:
    2 x min(N, 2 SMSS) (RFC 9293 3.8.2: MUST implement slow start)."""
    original = congestion.CongestionControl.on_new_ack

    def on_new_ack(self: congestion.CongestionControl, acked: int, snd_una: int) -> bool:
        slow_start = not self.in_recovery and self.cwnd < self.ssthresh
        retransmit = original(self, acked, snd_una)
        if slow_start:
            self.cwnd += min(acked, congestion.ABC_LIMIT_SEGMENTS * self.mss)
        return retransmit

    congestion.CongestionControl.on_new_ack = on_new_ack  # type: ignore[method-assign]


def fast_retransmit_after_ten_duplicates(host: Host) -> None:
    """Fast retransmit waits for ten duplicate ACKs, not three (RFC 5681 3.2, RFC 9293
    3.8.2: SHOULD)."""
    congestion.DUPLICATE_ACK_THRESHOLD = 10  # type: ignore[misc]


def user_timeout_ignored(host: Host) -> None:
    """TCP_USER_TIMEOUT is accepted and ignored: R2 stays the default (RFC 9293 3.8.3:
    MUST let the application set the timeout)."""
    calls = host.tcp.calls
    original = calls.setsockopt

    def setsockopt(sock: TcpSocket, name: str, value: Any, now: Nanoseconds) -> None:
        original(sock, name, 0 if name == "TCP_USER_TIMEOUT" else value, now)

    calls.setsockopt = setsockopt  # type: ignore[method-assign]


# ---- delayed ACK and Nagle (RFC 1122 4.2.3.2, 4.2.3.4) ------------------------------------


def every_segment_acknowledged_at_once(host: Host) -> None:
    """No delayed ACK: every segment is acknowledged on arrival (RFC 1122 4.2.3.2: SHOULD
    delay)."""

    def schedule_ack(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, *,
                     full_segment: bool) -> None:
        output.send_ack(tcp, sock, now)

    output.schedule_ack = schedule_ack


def full_segments_wait_for_the_timer(host: Host) -> None:
    """Full-sized segments are not counted: every ACK waits for the delayed-ACK timer
    (RFC 1122 4.2.3.2: SHOULD acknowledge at least every second full segment)."""
    original = output.schedule_ack

    def schedule_ack(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, *,
                     full_segment: bool) -> None:
        original(tcp, sock, now, full_segment=False)

    output.schedule_ack = schedule_ack


def no_nagle(host: Host) -> None:
    """Nagle's algorithm is off: small segments go out while data is unacknowledged (RFC
    1122 4.2.3.4: SHOULD implement it)."""
    _wrap_transmit(lambda sock: _temporarily(sock, small_segment_end=sock.snd_una))


def tcp_nodelay_ignored(host: Host) -> None:
    """TCP_NODELAY is accepted and ignored: Nagle holds small writes all the same (RFC
    1122 4.2.3.4: MUST let the application turn Nagle off)."""
    _wrap_transmit(lambda sock: _temporarily(sock, TCP_NODELAY=0))


# ---- keep-alives (RFC 9293 3.8.4, RFC 1122 4.2.3.6) ----------------------------------------


def keepalive_on_by_default(host: Host) -> None:
    """New sockets start with SO_KEEPALIVE on (RFC 1122 4.2.3.6: MUST default to off)."""
    calls = host.tcp.calls
    original = calls.open

    def open_socket(handle: int) -> TcpSocket:
        sock = original(handle)
        sock.options["SO_KEEPALIVE"] = 1
        return sock

    calls.open = open_socket  # type: ignore[method-assign]


def keepalive_idle_time_not_configurable(host: Host) -> None:
    """TCP_KEEPIDLE is accepted but the timer uses the system default (RFC 9293 3.8.4:
    MUST-27, the interval is configurable)."""
    calls = host.tcp.calls
    original = calls.setsockopt

    def setsockopt(sock: TcpSocket, name: str, value: Any, now: Nanoseconds) -> None:
        if name == "TCP_KEEPIDLE":
            value = host.settings.tcp_keepalive_time // 1_000_000_000
        original(sock, name, value, now)

    calls.setsockopt = setsockopt  # type: ignore[method-assign]


def keepalive_probe_with_a_garbage_octet(host: Host) -> None:
    """Keep-alive probes carry one garbage octet (RFC 1122 4.2.3.6: SHOULD carry none;
    the octet is only for peers that need it, and configurable)."""
    original = timers.keepalive_timeout

    def probe(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        output.emit(tcp, sock, now, sequence=seq.add(sock.snd_una, -1), flags=A,
                    payload=b"\x00")

    def keepalive_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        window_probe, output.send_window_probe = output.send_window_probe, probe
        try:
            original(tcp, sock, now)
        finally:
            output.send_window_probe = window_probe

    timers.keepalive_timeout = keepalive_timeout


def keepalive_gives_up_after_one_unanswered_probe(host: Host) -> None:
    """One unanswered keep-alive ends the connection, whatever TCP_KEEPCNT says (RFC 1122
    4.2.3.6: MUST NOT take a single unanswered probe as a dead connection)."""
    original = timers.keepalive_timeout

    def keepalive_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if sock.keepalive_probes >= 1 and sock.option("SO_KEEPALIVE") and (
                sock.state is State.ESTABLISHED):
            output.send_reset(tcp, sock, now)
            tcp.terminate(sock, Event.ABORT, now, "ETIMEDOUT")
            return
        original(tcp, sock, now)

    timers.keepalive_timeout = keepalive_timeout
