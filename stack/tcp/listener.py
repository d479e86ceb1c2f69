"""A listening socket: what arrives for it (RFC 9293 3.10.7.2, the LISTEN state) and
what fills and empties its SYN queue and accept queue (``connection.Listener``), with
Linux's accounting.

Linux counts a queue as full when it holds *more* than the backlog (backlog capped at
net.core.somaxconn): listen(s, 2) lets three connections wait. A SYN that finds the
accept queue full is dropped; a final ACK that finds it full is dropped (the SYN-ACK is
sent again on its timer) or answered with RST when tcp_accept_overflow is "reset"
(net.ipv4.tcp_abort_on_overflow).
"""

from __future__ import annotations

from stack.endpoints import Endpoint
from stack.tcp import output, seq
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State, change_state
from stack.timing import Nanoseconds
from stack.wire.tcp import Mss, TcpFlags, TcpSegment

A, S, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.RST


def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment, local: Endpoint,
                   remote: Endpoint, now: Nanoseconds, *, isn: int | None = None) -> None:
    """RFC 9293 3.10.7.2: a segment for a listening socket and no connection."""
    listener = sock.listener
    assert listener is not None
    flags = segment.flags
    if R in flags:
        tcp.record_drop(now, "tcp.rst_to_listener")  # an incoming RST is ignored
        return
    if A in flags:
        # Any acknowledgment is bad here: <SEQ=SEG.ACK><CTL=RST>.
        tcp.send_reset_reply(segment, local, remote, now)
        tcp.record_drop(now, "tcp.ack_to_listener")
        return
    if S not in flags:
        tcp.record_drop(now, "tcp.listener_no_syn")
        return
    if listener.accept_queue_full:
        tcp.record_drop(now, "tcp.accept_queue_full", "SYN dropped")  # Linux
        return
    if len(listener.syn_queue) >= tcp.settings.tcp_max_syn_backlog:
        # Linux answers SYNs beyond its SYN queue with SYN cookies; this stack keeps
        # state for up to tcp_max_syn_backlog embryonic connections and drops the rest.
        tcp.record_drop(now, "tcp.syn_queue_full")
        return
    child = tcp.new_connection(sock, local, remote)
    child.parent = sock
    listener.syn_queue.append(child)
    change_state(child, Event.RECEIVE_SYN, now)  # the child starts as a copy, in LISTEN
    child.irs = segment.seq
    child.rcv_nxt = seq.add(segment.seq, 1)
    child.rcv_adv = child.rcv_nxt
    mss = segment.find_option(Mss)
    child.peer_mss = mss.value if mss is not None else None
    tcp.update_mss(child, now)
    # RFC 3168 6.1.1: a SYN with ECE and CWR asks for ECN; agree when tcp_ecn allows.
    ecn_setup = TcpFlags.ECE | TcpFlags.CWR
    child.ecn = tcp.settings.tcp_ecn > 0 and flags & ecn_setup == ecn_setup
    child.iss = isn if isn is not None else tcp.initial_sequence(child, now)
    child.snd_una = child.snd_nxt = child.snd_max = child.small_segment_end = child.iss
    child.send_start = seq.add(child.iss, 1)
    child.snd_wnd = segment.window
    child.snd_wl1 = segment.seq
    output.send_syn(tcp, child, now)


def admit(tcp: TcpContext, child: TcpSocket, now: Nanoseconds) -> bool:
    """The final ACK of a handshake: move the child to the accept queue if there is
    room. Otherwise drop the ACK, or reset, as tcp_accept_overflow says."""
    parent = child.parent
    if parent is None or parent.listener is None:
        return True  # an active open that met a simultaneous one
    listener = parent.listener
    if listener.accept_queue_full:
        if tcp.settings.tcp_accept_overflow == "reset":
            output.send_reset(tcp, child, now)
            tcp.terminate(child, Event.ABORT, now, None)
        tcp.record_drop(now, "tcp.accept_queue_full", "final ACK dropped")
        return False
    if child in listener.syn_queue:
        listener.syn_queue.remove(child)
    listener.accept_queue.append(child)
    return True


def close_listener(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """Closing a listener: embryonic connections go silently, connections never
    accepted are reset (Linux inet_csk_listen_stop)."""
    listener = sock.listener
    assert listener is not None
    for child in list(listener.syn_queue):
        tcp.terminate(child, Event.ABORT, now, None)
    for child in list(listener.accept_queue):
        if child.state is not State.CLOSED:
            output.send_reset(tcp, child, now)
            tcp.terminate(child, Event.ABORT, now, None)
    listener.syn_queue.clear()
    listener.accept_queue.clear()
    sock.listener = None
    change_state(sock, Event.CLOSE, now)
