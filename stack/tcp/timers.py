"""A connection's timers: retransmission (RFC 6298, with the R2 limit of RFC 1122
4.2.3.5), delayed ACK (4.2.3.2), persist (4.2.2.17), keep-alive (4.2.3.6), TIME-WAIT
(RFC 9293 3.6, in ``time_wait``) and Linux's FIN-WAIT-2 timeout for orphans."""

from __future__ import annotations

from stack.tcp import output, seq, time_wait
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State
from stack.timing import SECOND, Nanoseconds, earliest


def next_timer(sock: TcpSocket) -> Nanoseconds | None:
    return earliest(sock.retransmit_at, sock.delayed_ack_at, sock.persist_at,
                    sock.keepalive_at, sock.time_wait_at, sock.fin_wait_2_at)


def run_timers(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    if time_wait.timer_expired(tcp, sock, now):
        return
    if sock.fin_wait_2_at is not None and sock.fin_wait_2_at <= now:
        if sock.state is State.FIN_WAIT_2:
            tcp.terminate(sock, Event.TIMEOUT, now, None)
            return
        sock.fin_wait_2_at = None
    if sock.delayed_ack_at is not None and sock.delayed_ack_at <= now:
        output.send_ack(tcp, sock, now)
    if sock.retransmit_at is not None and sock.retransmit_at <= now:
        retransmission_timeout(tcp, sock, now)
        if sock.state is State.CLOSED:
            return
    if sock.persist_at is not None and sock.persist_at <= now:
        persist_timeout(tcp, sock, now)
    if sock.keepalive_at is not None and sock.keepalive_at <= now:
        keepalive_timeout(tcp, sock, now)


def retry_limit(sock: TcpSocket) -> int:
    settings = sock.settings
    if sock.state is State.SYN_SENT:
        return settings.tcp_syn_retries
    if sock.state is State.SYN_RECEIVED:
        return settings.tcp_synack_retries
    return settings.tcp_retries2  # R2 of RFC 1122 4.2.3.5


def retransmission_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off the
    timer, restart it. After R2 retransmissions the connection is given up (RFC 1122
    4.2.3.5) with the last soft error heard, or ETIMEDOUT. R1 (negative advice to the IP
    tcp) is not implemented."""
    sock.retransmit_at = None
    user_timeout = sock.option("TCP_USER_TIMEOUT") * 1_000_000
    expired = (now - sock.unacknowledged_since >= user_timeout if user_timeout
               else sock.retransmissions >= retry_limit(sock))
    if expired:
        errno: str | None = sock.soft_error or "ETIMEDOUT"
        if sock.state is State.SYN_RECEIVED and sock.parent is not None:
            errno = None  # an embryonic connection goes quietly (Linux)
        tcp.terminate(sock, Event.ABORT, now, errno)
        return
    sock.retransmissions += 1
    sock.rto.back_off()  # RFC 6298 5.5
    sock.rtt_seq = None  # RFC 6298 3 (Karn)
    if sock.syn_unacknowledged:
        output.send_syn(tcp, sock, now)
        return
    # RFC 5681 3.1 eq. 4: ssthresh halves, cwnd is one segment; then go back to
    # SND.UNA and send again from there as the window allows.
    # FlightSize and NewReno's "recover" count everything sent, which snd_max holds
    # after an earlier go-back moved snd_nxt (RFC 6582 3.2 step 6).
    sock.congestion.on_timeout(max(0, seq.diff(sock.snd_max, sock.snd_una)), sock.snd_max)
    sock.snd_nxt = sock.small_segment_end = sock.snd_una  # Nagle holds no retransmission
    output.transmit(tcp, sock, now)
    if sock.retransmit_at is None and sock.flight > 0:
        sock.retransmit_at = now + sock.rto.rto
    if user_timeout and sock.retransmit_at is not None:
        # Linux tcp_clamp_rto_to_user_timeout: the timer fires when the time is up.
        sock.retransmit_at = min(sock.retransmit_at,
                                 max(now + 1, sock.unacknowledged_since + user_timeout))


def persist_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 1122 4.2.2.17: probe a zero window, the interval backing off exponentially;
    a window too small to fill by the rules is used anyway (the override timeout of RFC
    9293 3.8.6.2.1)."""
    sock.persist_at = None
    if sock.unsent == 0 and not (sock.fin_queued and sock.snd_nxt == sock.fin_seq):
        sock.persist_backoff = 0
        return
    usable = seq.diff(seq.add(sock.snd_una, sock.snd_wnd), sock.snd_nxt)
    if usable > 0:
        output.transmit(tcp, sock, now, force=True)
        return
    output.send_window_probe(tcp, sock, now)
    sock.persist_backoff += 1
    interval = min(sock.rto.rto << sock.persist_backoff, sock.settings.tcp_rto_max)
    sock.persist_at = now + interval


def keepalive_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
    """RFC 1122 4.2.3.6: after TCP_KEEPIDLE of silence send a probe, then one every
    TCP_KEEPINTVL; after TCP_KEEPCNT unanswered probes give up (Linux resets)."""
    sock.keepalive_at = None
    if not sock.option("SO_KEEPALIVE") or sock.state not in (
            State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_2):
        return
    if sock.flight > 0 or sock.unsent > 0:
        # Data in flight: the retransmission timer watches the connection.
        sock.keepalive_at = now + sock.option("TCP_KEEPIDLE") * SECOND
        return
    if sock.keepalive_probes >= sock.option("TCP_KEEPCNT"):
        output.send_reset(tcp, sock, now)
        tcp.terminate(sock, Event.ABORT, now, sock.soft_error or "ETIMEDOUT")
        return
    output.send_window_probe(tcp, sock, now)
    sock.keepalive_probes += 1
    sock.keepalive_at = now + sock.option("TCP_KEEPINTVL") * SECOND
