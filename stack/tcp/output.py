"""What a connection sends: segments built with the stack's own codec, the send path
with segmentation, Nagle's algorithm and silly window avoidance, acknowledgements
(delayed or not) and resets.

Other modules call these as ``output.<function>`` so that a test can replace one of them
on the module (``--ref-patch``) and every caller sees the replacement.
"""

from __future__ import annotations

from stack.tcp import seq
from stack.tcp.connection import MAX_WINDOW, TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import State
from stack.timing import Nanoseconds
from stack.wire.ipv4 import IpProtocol
from stack.wire.tcp import Mss, TcpFlags, TcpOption, TcpSegment

A, S, F, R, P = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH
# States in which the user's data goes out (RFC 9293 3.10.2 SEND).
SENDING_STATES = frozenset({
    State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK,
})


def emit(
    tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, *, sequence: int, flags: TcpFlags,
    payload: bytes = b"", options: tuple[TcpOption, ...] = (),
) -> None:
    """Send one segment of ``sock``'s connection. A segment with ACK carries RCV.NXT and
    the window, and so stands for any acknowledgement that was pending."""
    acknowledgement = sock.rcv_nxt if A in flags else 0
    window = advertised_window(sock) if A in flags or S in flags else 0
    if A in flags:
        sock.delayed_ack_at = None
        sock.unacknowledged_segments = 0
        sock.ack_now = False
        if sock.ecn_echo and R not in flags:
            flags |= TcpFlags.ECE  # RFC 3168 6.1.3: echo the CE mark until CWR
    urgent = 0
    if sock.snd_up is not None and seq.gt(sock.snd_up, sequence) and R not in flags:
        # RFC 9293 3.8.5 (MUST-62): URG, the pointer at the octet after the urgent data.
        flags |= TcpFlags.URG
        urgent = min(seq.diff(sock.snd_up, sequence), 0xFFFF)
    segment = TcpSegment(
        sock.local_port, sock.peer[1], seq=sequence, ack=acknowledgement, flags=flags,
        window=window, options=options, payload=payload, urgent_pointer=urgent,
    )
    send_segment(tcp, sock, segment, now)


def send_segment(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                 now: Nanoseconds) -> None:
    destination = sock.peer[0]
    mode = sock.options["IP_MTU_DISCOVER"]
    ttl, tos = sock.option("IP_TTL"), sock.option("IP_TOS")
    tcp.ip.send_datagram(
        now, destination, segment.emit(sock.local_address, destination), ttl=ttl, tos=tos,
        # Linux sets DF on TCP unless the socket says IP_PMTUDISC_DONT (RFC 1191 3).
        dont_fragment=mode != "IP_PMTUDISC_DONT",
        fragment_size=tcp.ip.path_mtu(destination, now), protocol=IpProtocol.TCP,
    )


def advertised_window(sock: TcpSocket) -> int:
    """The window to advertise, avoiding silly windows (RFC 9293 3.8.6.2.2, RFC 1122
    4.2.3.3): the right edge moves only when it can move by min(buffer / 2, MSS); it
    never moves left (RFC 9293 3.8.6: the window SHOULD NOT shrink)."""
    space = min(sock.receive_space, MAX_WINDOW)
    current = max(0, seq.diff(sock.rcv_adv, sock.rcv_nxt))
    threshold = min(sock.option("SO_RCVBUF") // 2, sock.rcv_mss)
    if space >= current + threshold or (space > current and space == min(
            sock.option("SO_RCVBUF"), MAX_WINDOW)):
        sock.rcv_adv = seq.add(sock.rcv_nxt, space)
        current = space
    return min(current, MAX_WINDOW)


def window_would_open(sock: TcpSocket) -> bool:
    """Whether reading made enough room to announce (the receiver's SWS rule)."""
    current = max(0, seq.diff(sock.rcv_adv, sock.rcv_nxt))
    threshold = min(sock.option("SO_RCVBUF") // 2, sock.rcv_mss)
    return min(sock.receive_space, MAX_WINDOW) >= current + threshold and current < threshold


def send_syn(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with our MSS (RFC 9293 3.7.1: the MSS
    option is sent on SYN; its value is the path MTU less 40, MUST-14 and MUST-15)."""
    flags = S if sock.state is State.SYN_SENT else S | A
    if sock.state is State.SYN_SENT and sock.settings.tcp_ecn == 1:
        flags |= TcpFlags.ECE | TcpFlags.CWR  # RFC 3168 6.1.1: ask for ECN
    elif sock.ecn and sock.state is State.SYN_RECEIVED:
        flags |= TcpFlags.ECE  # RFC 3168 6.1.1: agree to it
    emit(tcp, sock, now, sequence=sock.iss, flags=flags, options=(Mss(sock.rcv_mss),))
    sock.snd_nxt = seq.add(sock.iss, 1)
    if seq.gt(sock.snd_nxt, sock.snd_max):
        sock.snd_max = sock.snd_nxt
    if sock.retransmissions == 0 and sock.rtt_seq is None:
        sock.rtt_seq, sock.rtt_sent_at = sock.iss, now
    if sock.retransmissions == 0:
        sock.unacknowledged_since = now
    if sock.retransmit_at is None:
        sock.retransmit_at = now + sock.rto.rto


def send_ack(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """<SEQ=SND.NXT><ACK=RCV.NXT>. After a timeout sent SND.NXT back into data already
    sent, the peer may have all of it: an empty segment then carries the highest sequence
    sent (snd_max), or the peer finds it old and drops it unread (RFC 9293 3.10.7.4),
    ACK field and all. Linux's snd_nxt never goes back, so it does the same."""
    emit(tcp, sock, now, sequence=sock.snd_max, flags=A)


def send_reset(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 9293 3.10.4 ABORT: <SEQ=SND.NXT><CTL=RST> (snd_max, as for an ACK); Linux adds
    the ACK."""
    emit(tcp, sock, now, sequence=sock.snd_max, flags=R | A)


def schedule_ack(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, *,
                 full_segment: bool) -> None:
    """RFC 1122 4.2.3.2: delay the ACK for less than 0.5 s (tcp_delayed_ack_min here,
    Linux's first ATO), but acknowledge at least every second full-sized segment."""
    if full_segment:
        sock.unacknowledged_segments += 1
    if sock.ack_now or sock.unacknowledged_segments >= 2:
        send_ack(tcp, sock, now)
    elif sock.delayed_ack_at is None:
        sock.delayed_ack_at = now + sock.settings.tcp_delayed_ack_min


def segment_bytes(sock: TcpSocket, start: int, size: int) -> bytes:
    offset = seq.diff(start, sock.send_start)
    return bytes(sock.send_buffer[offset : offset + size])


def transmit(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, *,
             force: bool = False) -> None:
    """Send what the windows allow of the data not yet sent, and the FIN after it.
    ``force`` sends one segment of what the window holds regardless of the silly
    window rules (the override timeout of RFC 9293 3.8.6.2.1)."""
    if sock.state not in SENDING_STATES:
        return
    if tcp.ip.path_mtu(sock.peer[0], now) != sock.path_mtu:
        tcp.update_mss(sock, now)  # RFC 1191: the path MTU changed (lowered or aged)
    while True:
        offset = seq.diff(sock.snd_nxt, sock.send_start)
        available = len(sock.send_buffer) - offset
        usable = seq.diff(seq.add(sock.snd_una, sock.snd_wnd), sock.snd_nxt)
        room = min(usable, sock.congestion.send_allowance(sock.flight))
        fin = sock.fin_seq
        if available <= 0:
            if fin is not None and sock.snd_nxt == fin:
                send_data(tcp, sock, now, b"", fin=True)
            break
        size = min(available, sock.mss, room)
        if size <= 0:
            if usable <= 0:
                arm_persist(sock, now)  # RFC 1122 4.2.2.17: probe the zero window
            break
        whole = size == available
        if not force:
            # RFC 9293 3.8.6.2.1: send a full segment, or all the data (pushed), or at
            # least half the largest window the peer offered; else wait.
            if size < sock.mss and not whole and size < sock.max_snd_wnd // 2:
                arm_persist(sock, now)
                break
            # RFC 1122 4.2.3.4 (Nagle), in Minshall's variant as Linux has it: hold
            # back a segment smaller than the MSS while an earlier small segment is
            # unacknowledged, unless TCP_NODELAY.
            if (size < sock.mss and not sock.option("TCP_NODELAY")
                    and seq.gt(sock.small_segment_end, sock.snd_una)):
                break
        payload = bytes(sock.send_buffer[offset : offset + size])
        send_data(tcp, sock, now, payload, fin=whole and fin is not None and size <= room)
        if force:
            break


def send_data(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds, payload: bytes, *,
              fin: bool) -> None:
    """One segment at SND.NXT; advances SND.NXT, times it, arms the retransmission timer."""
    start = sock.snd_nxt
    # RFC 9293 3.9.1.2: PSH on the segment that empties the send buffer (as Linux marks
    # the last segment of a write).
    data_end = seq.add(sock.send_start, len(sock.send_buffer))
    push = bool(payload) and seq.add(start, len(payload)) == data_end
    flags = A | (P if push else 0) | (F if fin else 0)
    emit(tcp, sock, now, sequence=start, flags=flags, payload=payload)
    end = seq.add(start, len(payload) + fin)
    if len(payload) < sock.mss:
        sock.small_segment_end = end  # Nagle (Minshall): the last small segment
    new_data = seq.ge(start, sock.snd_max)
    if new_data and seq.ge(sock.snd_una, sock.snd_max):
        sock.unacknowledged_since = now  # nothing was outstanding before this
    sock.snd_nxt = end
    if seq.gt(end, sock.snd_max):
        sock.snd_max = end
    # RFC 6298 3 (Karn): time only segments sent for the first time.
    if new_data and sock.rtt_seq is None and sock.retransmissions == 0:
        sock.rtt_seq, sock.rtt_sent_at = start, now
    if sock.retransmit_at is None:
        sock.retransmit_at = now + sock.rto.rto  # RFC 6298 5.1
    sock.persist_at = None
    sock.persist_backoff = 0


def retransmit_first(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """Send the first unacknowledged segment again (fast retransmit, RFC 5681 3.2; a
    partial ACK, RFC 6582; a lowered path MTU, RFC 1191)."""
    sock.rtt_seq = None  # Karn
    if sock.syn_unacknowledged:
        send_syn(tcp, sock, now)
        return
    in_flight = seq.diff(sock.snd_nxt, sock.snd_una)
    if in_flight <= 0:
        return
    fin = sock.fin_seq
    data_end = seq.add(sock.send_start, len(sock.send_buffer))
    size = min(sock.mss, max(0, seq.diff(data_end, sock.snd_una)), in_flight)
    carries_fin = fin is not None and seq.add(sock.snd_una, size) == fin and seq.gt(
        sock.snd_nxt, fin)
    flags = A | (P if size else 0) | (F if carries_fin else 0)
    emit(tcp, sock, now, sequence=sock.snd_una, flags=flags,
         payload=segment_bytes(sock, sock.snd_una, size))
    if sock.retransmit_at is None:
        sock.retransmit_at = now + sock.rto.rto


def arm_persist(sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 1122 4.2.2.17 / RFC 9293 3.8.6.1: with data waiting and nothing in flight to
    bring an ACK, a timer probes the window, backing off like the RTO."""
    if sock.flight > 0 or sock.persist_at is not None or sock.retransmit_at is not None:
        return
    interval = min(sock.rto.rto << sock.persist_backoff, sock.settings.tcp_rto_max)
    sock.persist_at = now + interval


def send_window_probe(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """A probe of a zero window or keep-alive: <SEQ=SND.UNA-1><ACK=RCV.NXT>, no data, as
    Linux sends it; the peer answers with an ACK that shows its window (RFC 1122
    4.2.2.17, 4.2.3.6)."""
    emit(tcp, sock, now, sequence=seq.add(sock.snd_una, -1), flags=A)
