"""TIME-WAIT, all of it: entering it (RFC 9293 3.6: 2 x MSL, nothing else runs), a
segment arriving in it (RFC 9293 3.10.7.4 and Linux tcp_timewait_state_process, with the
reopening of RFC 1122 4.2.2.13), the end of its timer, and close() on a socket in it.

Each step is a module function, so that a test can replace one (``--ref-patch``).
"""

from __future__ import annotations

from stack.tcp import listener, output, seq
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State
from stack.timing import Nanoseconds
from stack.wire.tcp import TcpFlags, TcpSegment

A, S, F, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST
# RFC 1122 4.2.2.13: a reopened connection starts above the old SND.NXT (Linux adds
# 65535 + 2).
REOPEN_ISN_STEP = 65537


def enter(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 9293 3.6: TIME-WAIT lasts 2 x MSL; nothing else runs, and CE marks are no
    longer echoed (RFC 3168 6.1.3: there is no more data to slow down)."""
    sock.retransmit_at = sock.persist_at = sock.keepalive_at = None
    sock.delayed_ack_at = sock.fin_wait_2_at = None
    sock.time_wait_at = now + 2 * tcp.settings.tcp_msl
    sock.ecn = False
    sock.done = True


def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                    now: Nanoseconds) -> None:
    """A segment for a connection in TIME-WAIT. A SYN that may reopen it goes to the
    listener, or is answered with an ACK when none listens (as Linux)."""
    if not process(tcp, sock, segment, now):
        return
    local, remote = sock.local, sock.peer
    listening = tcp.listener_for(local)
    if listening is None:
        output.send_ack(tcp, sock, now)  # Linux: no listener, TIME-WAIT answers
        return
    isn = seq.add(sock.snd_nxt, REOPEN_ISN_STEP)
    tcp.terminate(sock, Event.REOPEN, now, None)
    listener.listen_arrives(tcp, listening, segment, local, remote, now, isn=isn)


def process(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
            now: Nanoseconds) -> bool:
    """A segment in TIME-WAIT, as Linux tcp_timewait_state_process handles it. Returns
    True for a SYN that may open a new connection (RFC 1122 4.2.2.13: a SYN above the old
    connection's sequence space)."""
    flags = segment.flags
    in_window_bare = segment.seq == sock.rcv_nxt and (
        segment.sequence_length == 0 or R in flags)
    if R in flags:
        # RFC 9293 3.10.7.4: a RST closes TIME-WAIT; RFC 1337 (tcp_rfc1337) ignores it.
        if in_window_bare and not sock.settings.tcp_rfc1337:
            tcp.terminate(sock, Event.RESET, now, None)
        else:
            tcp.record_drop(now, "tcp.rst_in_time_wait_ignored")
        return False
    if S in flags and A not in flags and seq.gt(segment.seq, sock.rcv_nxt):
        return True
    if in_window_bare:
        sock.time_wait_at = now + 2 * sock.settings.tcp_msl
        return False
    # RFC 9293 3.10.7.4: a retransmitted FIN is acknowledged and restarts the 2 MSL
    # timeout (Linux restarts it on any segment with ACK).
    if A in flags or F in flags:
        sock.time_wait_at = now + 2 * sock.settings.tcp_msl
    output.send_ack(tcp, sock, now)
    return False


def timer_expired(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> bool:
    """Whether 2 x MSL has passed: the connection is then closed."""
    if sock.time_wait_at is None or sock.time_wait_at > now:
        return False
    tcp.terminate(sock, Event.TIMEOUT, now, None)
    return True


def resets_on_abort(sock: TcpSocket) -> bool:
    """Whether aborting the connection (close with unread data or a zero linger) sends
    a RST: not from TIME-WAIT, where the peer has closed already."""
    return sock.state is not State.TIME_WAIT
