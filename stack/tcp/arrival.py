"""SEGMENT ARRIVES for a connection (RFC 9293 3.10.7.3 and 3.10.7.4), in the order the
RFC gives: sequence number check, RST, SYN, ACK, URG (ignored), text, FIN.

The LISTEN state is in ``listener``; a segment for no socket is answered in ``tcp``.
Each step is a module function, so that a test can replace one (``--ref-patch``).
"""

from __future__ import annotations

from dataclasses import replace

from stack.tcp import listener, output, seq, time_wait
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State, change_state
from stack.timing import Nanoseconds
from stack.wire.tcp import Mss, TcpFlags, TcpSegment

A, S, F, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST
RECEIVING_STATES = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> None:
    if sock.state is State.SYN_SENT:
        syn_sent_arrives(tcp, sock, segment, now)
        return
    flags = segment.flags
    if (sock.state is State.SYN_RECEIVED and flags & (S | A) == S | A
            and segment.seq == sock.irs and not segment.payload
            and segment.ack == sock.snd_nxt):
        # Simultaneous open: the peer's SYN-ACK repeats its SYN; what counts is its ACK
        # (Linux tcp_validate_incoming lets it through).
        segment = replace(segment, seq=sock.rcv_nxt, flags=flags & ~S)
        flags = segment.flags
    if TcpFlags.CWR in flags:
        sock.ecn_echo = False  # RFC 3168 6.1.3: the peer reduced its window
    if (sock.state is State.SYN_RECEIVED and S in flags and A not in flags
            and segment.seq == sock.irs):
        # The peer's SYN again: our SYN-ACK was lost (Linux tcp_check_req resends it).
        output.send_syn(tcp, sock, now)
        return
    # First: check the sequence number.
    if not acceptable(sock, segment):
        if R not in flags:
            output.send_ack(tcp, sock, now)  # RFC 9293 3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT>
        tcp.record_drop(now, "tcp.unacceptable_segment", f"seq {segment.seq}")
        return
    if sock.keepalive_at is not None:
        sock.keepalive_at = now + sock.option("TCP_KEEPIDLE") * 1_000_000_000
        sock.keepalive_probes = 0
    # Second: the RST bit.
    if R in flags:
        reset_arrives(tcp, sock, segment, now)
        return
    # Fourth: the SYN bit. RFC 9293 3.10.7.4 (RFC 5961 4.2): in a synchronized state a
    # SYN draws a challenge ACK and is dropped; so does one in SYN-RECEIVED.
    if S in flags:
        output.send_ack(tcp, sock, now)
        tcp.record_drop(now, "tcp.syn_in_window", sock.state.value)
        return
    # Fifth: the ACK field; without ACK the segment is dropped.
    if A not in flags:
        tcp.record_drop(now, "tcp.no_ack", sock.state.value)
        return
    if not ack_arrives(tcp, sock, segment, now):
        return
    # Sixth: the URG bit (RFC 9293 3.8.5): RCV.UP = max(RCV.UP, SEG.UP).
    if TcpFlags.URG in flags and sock.state in RECEIVING_STATES and segment.urgent_pointer:
        urgent_pointer = seq.add(segment.seq, segment.urgent_pointer)
        if seq.gt(urgent_pointer, sock.rcv_nxt) and (
                sock.rcv_up is None or seq.gt(urgent_pointer, sock.rcv_up)):
            sock.rcv_up = urgent_pointer
    # Seventh and eighth: the text and the FIN.
    if segment.payload or F in flags:
        text_arrives(tcp, sock, segment, now)
    if sock.state in output.SENDING_STATES:
        output.transmit(tcp, sock, now)


def acceptable(sock: TcpSocket, segment: TcpSegment) -> bool:
    """RFC 9293 3.10.7.4, the four cases of the acceptability test (MUST-9 of 3.4)."""
    length = segment.sequence_length
    window = max(0, seq.diff(sock.rcv_adv, sock.rcv_nxt))
    start = segment.seq
    if length == 0 and window == 0:
        return start == sock.rcv_nxt
    if length == 0:
        return seq.le(sock.rcv_nxt, start) and seq.lt(start, seq.add(sock.rcv_nxt, window))
    if window == 0:
        return False
    end = seq.add(start, length - 1)
    right = seq.add(sock.rcv_nxt, window)
    return (seq.le(sock.rcv_nxt, start) and seq.lt(start, right)) or (
        seq.le(sock.rcv_nxt, end) and seq.lt(end, right))


def syn_sent_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
    """RFC 9293 3.10.7.3."""
    flags = segment.flags
    if A in flags and (seq.le(segment.ack, sock.iss) or seq.gt(segment.ack, sock.snd_max)):
        # An ACK of something we never sent: <SEQ=SEG.ACK><CTL=RST>, unless a RST.
        if R not in flags:
            tcp.send_reset_reply(segment, sock.local, sock.peer, now)
        tcp.record_drop(now, "tcp.syn_sent_bad_ack", str(segment.ack))
        return
    if R in flags:
        if A in flags:
            # tcp(7): a RST answering our SYN is "connection refused".
            tcp.terminate(sock, Event.RESET, now, "ECONNREFUSED")
        else:
            tcp.record_drop(now, "tcp.syn_sent_rst_without_ack")
        return
    if S not in flags:
        tcp.record_drop(now, "tcp.syn_sent_no_syn")
        return
    take_peer_syn(tcp, sock, segment, now)
    # RFC 3168 6.1.1: a SYN-ACK with ECE (and not CWR) agrees to the ECN we asked for.
    sock.ecn = (sock.settings.tcp_ecn == 1 and TcpFlags.ECE in flags
                and TcpFlags.CWR not in flags)
    if A in flags:
        sock.snd_una = segment.ack
        syn_acknowledged(sock, segment, now)
        change_state(sock, Event.RECEIVE_SYN_ACK, now)
        connected(sock, now)
        output.send_ack(tcp, sock, now)
        output.transmit(tcp, sock, now)
    else:
        # Simultaneous open: SYN-RECEIVED, and our SYN again with the ACK of theirs.
        change_state(sock, Event.RECEIVE_SYN, now)
        sock.retransmit_at = None
        output.send_syn(tcp, sock, now)


def take_peer_syn(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                  now: Nanoseconds) -> None:
    """Record the peer's ISN, window and MSS from its SYN."""
    sock.irs = segment.seq
    sock.rcv_nxt = seq.add(segment.seq, 1)
    sock.rcv_adv = sock.rcv_nxt
    mss = segment.find_option(Mss)
    # RFC 9293 3.7.1 (MUST-15): without the option, assume 536 (tcp_default_mss).
    sock.peer_mss = mss.value if mss is not None else None
    tcp.update_mss(sock, now)


def syn_acknowledged(sock: TcpSocket, segment: TcpSegment, now: Nanoseconds) -> None:
    """Our SYN is acknowledged: take the window, the RTT sample, stop the timer."""
    sock.snd_wnd = segment.window
    sock.max_snd_wnd = max(sock.max_snd_wnd, segment.window)
    sock.snd_wl1, sock.snd_wl2 = segment.seq, segment.ack
    sock.send_start = seq.add(sock.iss, 1)
    if sock.rtt_seq is not None and sock.retransmissions == 0:
        sock.rto.on_rtt_sample(now - sock.rtt_sent_at)  # RFC 6298 3: Karn
    sock.rtt_seq = None
    sock.retransmissions = 0
    sock.retransmit_at = None


def reset_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                  now: Nanoseconds) -> None:
    """RFC 9293 3.10.7.4 second check. RFC 5961 3.2 (as Linux): only a RST at exactly
    RCV.NXT resets; one elsewhere in the window draws a challenge ACK."""
    if segment.seq != sock.rcv_nxt and sock.settings.tcp_challenge_ack:
        output.send_ack(tcp, sock, now)
        tcp.record_drop(now, "tcp.rst_challenged", str(segment.seq))
        return
    if sock.state is State.SYN_RECEIVED and sock.parent is not None:
        # A passive open goes back to LISTEN: only this embryonic connection goes.
        tcp.terminate(sock, Event.RESET, now, None)
        return
    # Linux tcp_reset: EPIPE in CLOSE-WAIT, ECONNRESET elsewhere (an active SYN-RECEIVED
    # included, where RFC 9293 says "connection refused").
    errno = "EPIPE" if sock.state is State.CLOSE_WAIT else "ECONNRESET"
    tcp.terminate(sock, Event.RESET, now, errno)


def ack_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                now: Nanoseconds) -> bool:
    """RFC 9293 3.10.7.4 fifth check; False when the segment goes no further."""
    ack = segment.ack
    if sock.state is State.SYN_RECEIVED:
        if not (seq.lt(sock.snd_una, ack) and seq.le(ack, sock.snd_max)):
            # An unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>.
            tcp.send_reset_reply(segment, sock.local, sock.peer, now)
            tcp.record_drop(now, "tcp.syn_received_bad_ack", str(ack))
            return False
        if not listener.admit(tcp, sock, now):
            return False  # the accept queue is full (listener.admit says what it did)
        sock.snd_una = ack
        syn_acknowledged(sock, segment, now)
        change_state(sock, Event.RECEIVE_ACK_OF_SYN, now)
        connected(sock, now)
        return True
    if seq.gt(ack, sock.snd_max):
        # An ACK of something not yet sent: ACK, drop (RFC 9293 3.10.7.4).
        output.send_ack(tcp, sock, now)
        tcp.record_drop(now, "tcp.ack_of_unsent", str(ack))
        return False
    window_before = sock.snd_wnd
    if seq.gt(ack, sock.snd_una):
        new_acknowledgement(tcp, sock, ack, now)
    elif is_duplicate_ack(sock, segment) and sock.congestion.on_duplicate_ack(
            sock.flight, sock.snd_max):
        output.retransmit_first(tcp, sock, now)  # RFC 5681 3.2: fast retransmit
    # RFC 9293 3.10.7.4: update the send window from the most recent segment only.
    if seq.le(sock.snd_una, ack) and (seq.lt(sock.snd_wl1, segment.seq) or (
            sock.snd_wl1 == segment.seq and seq.le(sock.snd_wl2, ack))):
        sock.snd_wnd = segment.window
        sock.snd_wl1, sock.snd_wl2 = segment.seq, ack
        sock.max_snd_wnd = max(sock.max_snd_wnd, segment.window)
        if sock.snd_wnd > window_before:
            sock.persist_at = None
            sock.persist_backoff = 0
    if sock.fin_acknowledged:
        if sock.state is State.FIN_WAIT_1:
            change_state(sock, Event.RECEIVE_ACK_OF_FIN, now)
            if sock.orphan:
                sock.fin_wait_2_at = now + sock.settings.tcp_fin_timeout
        elif sock.state is State.CLOSING:
            change_state(sock, Event.RECEIVE_ACK_OF_FIN, now)
            time_wait.enter(tcp, sock, now)
            return False
        elif sock.state is State.LAST_ACK:
            tcp.terminate(sock, Event.RECEIVE_ACK_OF_FIN, now, None)
            return False
    return True


def connected(sock: TcpSocket, now: Nanoseconds) -> None:
    """The connection reached ESTABLISHED."""
    sock.ever_connected = True
    if not sock.sndbuf_locked:
        # Linux tcp_sndbuf_expand: room for two initial windows of segments, each
        # charged a power-of-two buffer (87040 bytes for an MSS of 1460).
        per_segment = 1 << (sock.mss + 640 - 1).bit_length()
        segments = max(sock.settings.tcp_initial_window_segments,
                       sock.congestion.cwnd // sock.mss)
        sock.options["SO_SNDBUF"] = max(sock.option("SO_SNDBUF"),
                                        2 * segments * (per_segment + 256))
    if sock.option("SO_KEEPALIVE"):
        sock.keepalive_at = now + sock.option("TCP_KEEPIDLE") * 1_000_000_000


def is_duplicate_ack(sock: TcpSocket, segment: TcpSegment) -> bool:
    """RFC 5681 2: same ACK, no data, no SYN or FIN, same window, data outstanding."""
    return (segment.ack == sock.snd_una and not segment.payload
            and not segment.flags & (S | F) and segment.window == sock.snd_wnd
            and sock.flight > 0)


def new_acknowledgement(tcp: TcpContext, sock: TcpSocket, ack: int, now: Nanoseconds) -> None:
    """SND.UNA < SEG.ACK =< SND.MAX: release what was acknowledged, sample the RTT,
    restart or stop the retransmission timer (RFC 6298 5.2, 5.3)."""
    acked = seq.diff(ack, sock.snd_una)
    data_acked = min(len(sock.send_buffer), max(0, seq.diff(ack, sock.send_start)))
    del sock.send_buffer[:data_acked]
    sock.send_start = seq.add(sock.send_start, data_acked)
    sock.snd_una = ack
    if seq.lt(sock.snd_nxt, ack):
        sock.snd_nxt = ack
    if sock.rtt_seq is not None and seq.gt(ack, sock.rtt_seq):
        sock.rto.on_rtt_sample(now - sock.rtt_sent_at)
        sock.rtt_seq = None
    sock.retransmissions = 0
    sock.unacknowledged_since = now
    if sock.snd_up is not None and seq.ge(ack, sock.snd_up):
        sock.snd_up = None  # the urgent data is through
    if sock.congestion.on_new_ack(acked, ack):
        output.retransmit_first(tcp, sock, now)  # RFC 6582: a partial ACK
    sock.retransmit_at = None if sock.flight == 0 else now + sock.rto.rto


def text_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                 now: Nanoseconds) -> None:
    """RFC 9293 3.10.7.4 seventh (text) and eighth (FIN) steps. Data in order goes to
    the receive buffer, data beyond RCV.NXT waits in order (RFC 9293 3.10.7.4: SHOULD be
    held), then anything it completes follows."""
    if sock.state not in RECEIVING_STATES:
        if segment.payload:
            tcp.record_drop(now, "tcp.text_after_fin", sock.state.value)
        if F in segment.flags and seq.add(segment.seq, len(segment.payload)) == seq.add(
                sock.rcv_nxt, -1):
            output.send_ack(tcp, sock, now)  # a retransmitted FIN: acknowledge it again
        return
    start, data, fin = segment.seq, segment.payload, F in segment.flags
    if sock.orphan and data and seq.gt(seq.add(start, len(data)), sock.rcv_nxt):
        # Linux: new data for a socket the user closed is answered with RST.
        output.send_reset(tcp, sock, now)
        tcp.terminate(sock, Event.ABORT, now, None)
        return
    if seq.lt(start, sock.rcv_nxt):
        data = data[seq.diff(sock.rcv_nxt, start):]
        start = sock.rcv_nxt
    room = max(0, seq.diff(sock.rcv_adv, start))
    if len(data) > room:
        data, fin = data[:room], False  # beyond the window we advertised
    full = len(segment.payload) >= sock.rcv_mss
    if start != sock.rcv_nxt:
        sock.out_of_order[start] = (data, fin)
        output.send_ack(tcp, sock, now)  # RFC 5681 4.2: an out-of-order segment, ACK now
        return
    gap_filled = bool(sock.out_of_order)
    deliver(sock, data)
    fin_in_order = fin
    while sock.out_of_order and not fin_in_order:
        following = next((s for s in sock.out_of_order if seq.le(s, sock.rcv_nxt)), None)
        if following is None:
            break
        queued, queued_fin = sock.out_of_order.pop(following)
        skip = seq.diff(sock.rcv_nxt, following)
        if skip <= len(queued):
            deliver(sock, queued[skip:])
            fin_in_order = queued_fin
    if fin_in_order:
        fin_arrives(tcp, sock, now)
        return
    if gap_filled:
        sock.ack_now = True  # RFC 5681 4.2: filling a gap is acknowledged at once
    if data or gap_filled:
        output.schedule_ack(tcp, sock, now, full_segment=full)


def deliver(sock: TcpSocket, data: bytes) -> None:
    sock.receive_buffer += data
    sock.rcv_nxt = seq.add(sock.rcv_nxt, len(data))
    take_urgent_octet(sock)


def take_urgent_octet(sock: TcpSocket) -> None:
    """Once the last urgent octet has arrived it is the mark (Linux tcp_urg); without
    SO_OOBINLINE it leaves the stream for MSG_OOB."""
    if sock.rcv_up is None:
        return
    behind = seq.diff(sock.rcv_nxt, seq.add(sock.rcv_up, -1))
    if not 1 <= behind <= len(sock.receive_buffer):
        return
    index = len(sock.receive_buffer) - behind
    sock.urgent_mark = index
    if not sock.option("SO_OOBINLINE"):
        sock.urgent_octet = bytes(sock.receive_buffer[index : index + 1])
        del sock.receive_buffer[index]
    sock.rcv_up = None


def fin_arrives(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 9293 3.10.7.4 eighth: the FIN advances RCV.NXT, is acknowledged, and the user
    hears the end of the stream."""
    sock.out_of_order.clear()
    sock.rcv_nxt = seq.add(sock.rcv_nxt, 1)
    sock.fin_received = True
    sock.rcv_shutdown = True
    change_state(sock, Event.RECEIVE_FIN, now)
    output.send_ack(tcp, sock, now)
    if sock.state is State.TIME_WAIT:
        time_wait.enter(tcp, sock, now)
