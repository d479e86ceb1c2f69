"""One TCP socket: its options, its transmission control block (RFC 9293 3.3.1), its
buffers and timers, and a listener's queues. Behaviour lives elsewhere (``arrival``,
``time_wait``, ``listener``, ``output``, ``timers``, ``calls``); this module holds the
data and a few derived values."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Final

from stack.endpoints import ANY, Endpoint, default_options
from stack.settings import Settings
from stack.tcp import seq
from stack.tcp.congestion import CongestionControl
from stack.tcp.rto import RetransmissionTimeout
from stack.tcp.state import State
from stack.timing import Nanoseconds

MAX_WINDOW: Final = 65535  # no window scaling (RFC 7323) yet


@dataclass
class Listener:
    """A listening socket's queues (its behaviour is in ``listener``): connections
    still in their handshake, and those waiting for accept."""

    backlog: int
    syn_queue: list[TcpSocket] = field(default_factory=list)
    accept_queue: deque[TcpSocket] = field(default_factory=deque)

    @property
    def accept_queue_full(self) -> bool:
        return len(self.accept_queue) > self.backlog  # Linux sk_acceptq_is_full

    def forget(self, child: TcpSocket) -> None:
        if child in self.syn_queue:
            self.syn_queue.remove(child)
        if child in self.accept_queue:
            self.accept_queue.remove(child)


@dataclass
class TcpSocket:
    handle: int | None  # None: not (or no longer) reachable by the user
    settings: Settings
    local_address: IPv4Address = ANY
    local_port: int = 0
    remote: Endpoint | None = None
    state: State = State.CLOSED
    state_history: list[tuple[Nanoseconds, str, str, str]] = field(default_factory=list)
    nonblocking: bool = False
    options: dict[str, int | str] = field(default_factory=dict)
    linger: tuple[int, int] = (0, 0)  # SO_LINGER (onoff, seconds)
    listener: Listener | None = None  # when in LISTEN
    parent: TcpSocket | None = None  # the listener of a connection not yet accepted
    connecting: bool = False  # connect() started and not yet reported (Linux SS_CONNECTING)
    ever_connected: bool = False
    orphan: bool = False  # closed by the user, finishing on its own
    port_locked: bool = False  # bound by the user to a given port (Linux BINDPORT_LOCK)

    # --- send sequence variables (RFC 9293 3.3.1) -----------------------------------------
    iss: int = 0
    snd_una: int = 0
    snd_nxt: int = 0
    snd_max: int = 0  # the highest sequence number sent (snd_nxt goes back on a timeout)
    snd_wnd: int = 0
    snd_wl1: int = 0
    snd_wl2: int = 0
    max_snd_wnd: int = 0  # RFC 9293 3.8.6.2.1: the largest window the peer offered
    send_buffer: bytearray = field(default_factory=bytearray)
    send_start: int = 0  # the sequence number of send_buffer[0]
    small_segment_end: int = 0  # where the last segment shorter than the MSS ended
    fin_queued: bool = False  # the user closed the sending side: a FIN follows the data
    mss: int = 536  # effective send MSS (RFC 9293 3.7.1)
    peer_mss: int | None = None
    user_mss: int = 0  # TCP_MAXSEG set by the user, 0 when not
    rcv_mss: int = 536  # the MSS we announced: what we expect a full segment to hold
    path_mtu: int = 0  # the path MTU the MSS was last computed from

    # --- receive sequence variables -----------------------------------------------------
    irs: int = 0
    rcv_nxt: int = 0
    rcv_adv: int = 0  # the right edge of the window we advertised (RCV.NXT + RCV.WND)
    receive_buffer: bytearray = field(default_factory=bytearray)
    out_of_order: dict[int, tuple[bytes, bool]] = field(default_factory=dict)  # seq: data, FIN
    fin_received: bool = False
    # Urgent data (RFC 9293 3.8.5), as Linux: the last urgent octet is the mark, where
    # reads stop (SIOCATMARK); without SO_OOBINLINE it leaves the stream for MSG_OOB.
    # POLLPRI holds until it is read.
    rcv_up: int | None = None  # the peer's urgent pointer: the octet after urgent data
    urgent_octet: bytes | None = None
    urgent_mark: int | None = None  # octets to read before the mark; None: no mark
    snd_up: int | None = None  # ours (MSG_OOB): the octet after our urgent data
    ecn: bool = False  # ECN agreed in the handshake (RFC 3168 6.1.1)
    ecn_echo: bool = False  # a CE mark seen: ECE on our ACKs until the peer's CWR
    sndbuf_locked: bool = False  # SO_SNDBUF set by the user: no automatic growth

    # --- shutdown and errors (Linux sk_shutdown, sk_err, sk_err_soft) -----------------------
    rcv_shutdown: bool = False
    snd_shutdown: bool = False
    error: str | None = None
    soft_error: str | None = None
    done: bool = False  # the connection is over (Linux SOCK_DONE)

    # --- timers (absolute deadlines, None when not running) -------------------------------
    retransmit_at: Nanoseconds | None = None
    delayed_ack_at: Nanoseconds | None = None
    persist_at: Nanoseconds | None = None
    keepalive_at: Nanoseconds | None = None
    time_wait_at: Nanoseconds | None = None
    fin_wait_2_at: Nanoseconds | None = None
    retransmissions: int = 0  # consecutive timeouts of the retransmission timer
    unacknowledged_since: Nanoseconds = 0  # when the oldest data in flight was sent
    persist_backoff: int = 0
    keepalive_probes: int = 0
    rtt_seq: int | None = None  # Karn: the segment being timed, None when none is
    rtt_sent_at: Nanoseconds = 0
    unacknowledged_segments: int = 0  # full segments received since our last ACK
    ack_now: bool = False
    rto: RetransmissionTimeout = field(init=False)
    congestion: CongestionControl = field(init=False)

    def __post_init__(self) -> None:
        self.rto = RetransmissionTimeout(self.settings)
        self.congestion = CongestionControl(self.mss, self.settings)
        defaults = {
            **default_options(self.settings, receive_buffer=self.settings.tcp_receive_buffer,
                              send_buffer=self.settings.tcp_send_buffer),
            "SO_OOBINLINE": 0,
            "TCP_NODELAY": 0,
            "TCP_USER_TIMEOUT": 0,  # milliseconds; 0: R2 counts retransmissions
            "TCP_KEEPIDLE": self.settings.tcp_keepalive_time // 1_000_000_000,
            "TCP_KEEPINTVL": self.settings.tcp_keepalive_interval // 1_000_000_000,
            "TCP_KEEPCNT": self.settings.tcp_keepalive_probes,
        }
        self.options = {**defaults, **self.options}

    # --- derived values -----------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self.local_port != 0

    @property
    def local(self) -> Endpoint:
        return self.local_address, self.local_port

    @property
    def peer(self) -> Endpoint:
        assert self.remote is not None, "a connection always has a peer"
        return self.remote

    @property
    def syn_unacknowledged(self) -> bool:
        return seq.le(self.snd_una, self.iss)

    @property
    def fin_seq(self) -> int | None:
        """The sequence number our FIN takes, once the user closed the sending side."""
        if not self.fin_queued:
            return None
        return seq.add(self.send_start, len(self.send_buffer))

    @property
    def fin_acknowledged(self) -> bool:
        fin = self.fin_seq
        return fin is not None and seq.gt(self.snd_una, fin)

    @property
    def flight(self) -> int:
        """Sequence space sent and not yet acknowledged."""
        return max(0, seq.diff(self.snd_nxt, self.snd_una))

    @property
    def unsent(self) -> int:
        """Bytes of the send buffer not yet sent."""
        return max(0, len(self.send_buffer) - max(0, seq.diff(self.snd_nxt, self.send_start)))

    @property
    def receive_space(self) -> int:
        buffer = self.options["SO_RCVBUF"]
        assert isinstance(buffer, int)
        return max(0, buffer - len(self.receive_buffer))

    @property
    def send_space(self) -> int:
        buffer = self.options["SO_SNDBUF"]
        assert isinstance(buffer, int)
        return max(0, buffer - len(self.send_buffer))

    def option(self, name: str) -> int:
        value = self.options[name]
        assert isinstance(value, int)
        return value

    def take_error(self) -> str | None:
        error, self.error = self.error, None
        return error
