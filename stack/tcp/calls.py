"""The socket calls on a TCP socket, with the semantics of Linux tcp(7): errno names as
Linux returns them, poll events as tcp_poll computes them. `TcpLayer` holds one
`TcpCalls` (``host.tcp.calls``), which reaches the connections through `TcpContext`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Final

from stack.endpoints import (
    ANY,
    Endpoint,
    Message,
    addresses_overlap,
    checked_option,
    connected_mtu,
    ephemeral_port,
    known_option,
)
from stack.errors import SocketError, Unsupported
from stack.tcp import listener, output, seq, time_wait
from stack.tcp.connection import Listener, TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State, change_state
from stack.timing import SECOND, Nanoseconds

MIN_SEND_BUFFER: Final = 4608  # Linux SOCK_MIN_SNDBUF
MIN_USER_MSS: Final = 88  # Linux TCP_MIN_MSS
OPENING: Final = frozenset({State.SYN_SENT, State.SYN_RECEIVED})
# The option ranges Linux accepts (do_tcp_setsockopt).
OPTION_RANGES: Final = {"TCP_KEEPIDLE": (1, 32767), "TCP_KEEPINTVL": (1, 32767),
                        "TCP_USER_TIMEOUT": (0, (1 << 31) - 1),
                        "TCP_KEEPCNT": (1, 127)}


@dataclass(frozen=True)
class Linger:
    """close() with SO_LINGER on a blocking socket waits until ``done()`` or
    ``deadline``."""

    deadline: Nanoseconds
    done: Callable[[], bool]


class TcpCalls:
    """The calls of every TCP socket, over the services of the layer (``host.tcp.calls``)."""

    def __init__(self, tcp: TcpContext) -> None:
        self.tcp = tcp

    # --- life cycle ---------------------------------------------------------------------

    def open(self, handle: int) -> TcpSocket:
        sock = self.tcp.sockets[handle] = TcpSocket(handle, self.tcp.settings)
        return sock

    def adopt(self, sock: TcpSocket, handle: int) -> None:
        """An accepted connection gets a handle."""
        sock.handle = handle
        sock.parent = None
        self.tcp.sockets[handle] = sock

    def close(self, sock: TcpSocket, now: Nanoseconds) -> Linger | None:
        self.tcp.sockets.pop(sock.handle or -1, None)
        sock.handle = None
        sock.orphan = True
        if sock.state is State.LISTEN:
            listener.close_listener(self.tcp, sock, now)
            return None
        if sock.state in (State.CLOSED, State.SYN_SENT):
            self.tcp.terminate(sock, Event.CLOSE, now, None)
            return None
        onoff, seconds = sock.linger
        if sock.receive_buffer or (onoff and seconds == 0):
            # RFC 1122 4.2.2.13 / Linux tcp_close: unread data (or SO_LINGER with a zero
            # timeout) makes close abort the connection with a RST.
            if time_wait.resets_on_abort(sock):
                output.send_reset(self.tcp, sock, now)
            self.tcp.terminate(sock, Event.ABORT, now, None)
            return None
        self._send_fin(sock, now)
        if sock.state is State.FIN_WAIT_2:
            sock.fin_wait_2_at = now + self.tcp.settings.tcp_fin_timeout
        if onoff and not sock.nonblocking:
            return Linger(now + seconds * SECOND, lambda: sock.state not in (
                State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK))
        return None

    def _send_fin(self, sock: TcpSocket, now: Nanoseconds) -> None:
        """RFC 9293 3.10.4 CLOSE: queue a FIN after the data; ESTABLISHED goes to
        FIN-WAIT-1, CLOSE-WAIT to LAST-ACK."""
        sock.snd_shutdown = True
        if sock.fin_queued or sock.state not in (
                State.ESTABLISHED, State.CLOSE_WAIT, State.SYN_RECEIVED):
            return
        sock.fin_queued = True
        change_state(sock, Event.CLOSE, now)
        output.transmit(self.tcp, sock, now)

    # --- addresses ----------------------------------------------------------------------

    def bind(self, sock: TcpSocket, address: IPv4Address, port: int) -> None:
        if sock.bound or sock.state is not State.CLOSED:
            raise SocketError("EINVAL", "already bound")
        if address not in (ANY, self.tcp.ip.address):
            raise SocketError("EADDRNOTAVAIL", f"{address} is not an address of this host")
        if port == 0:
            port = self._ephemeral_port()
            if port == 0:
                raise SocketError("EADDRINUSE", "no free port")
        elif self._port_taken(sock, address, port):
            raise SocketError("EADDRINUSE", f"port {port} is in use")
        else:
            sock.port_locked = True
        sock.local_address, sock.local_port = address, port

    def listen(self, sock: TcpSocket, backlog: int, now: Nanoseconds) -> None:
        if sock.state is State.LISTEN:
            assert sock.listener is not None
            sock.listener.backlog = min(max(backlog, 0), self.tcp.settings.somaxconn)
            return
        if sock.state is not State.CLOSED or sock.ever_connected:
            raise SocketError("EINVAL", f"listen in {sock.state.value}")
        if not sock.bound:
            self.bind(sock, ANY, 0)
        # listen(2): the backlog is capped at somaxconn; a negative one counts as 0... and
        # Linux takes it as is, the queue holding one more than it.
        sock.listener = Listener(min(max(backlog, 0), self.tcp.settings.somaxconn))
        change_state(sock, Event.PASSIVE_OPEN, now)

    def accept(self, sock: TcpSocket) -> TcpSocket:
        if sock.state is not State.LISTEN or sock.listener is None:
            raise SocketError("EINVAL", "accept on a socket that is not listening")
        if not sock.listener.accept_queue:
            raise SocketError("EAGAIN", "no connection to accept")
        return sock.listener.accept_queue.popleft()

    def connect(self, sock: TcpSocket, address: IPv4Address, port: int,
                now: Nanoseconds) -> None:
        """Starts the handshake and raises EINPROGRESS; the caller waits with
        ``finish_connect`` (a blocking socket) or reports it (O_NONBLOCK)."""
        if sock.connecting:
            if sock.state in OPENING:
                raise SocketError("EALREADY", "connection in progress")
            self.finish_connect(sock)  # reports the outcome once, as Linux does
            return
        if sock.state is not State.CLOSED or sock.ever_connected:
            raise SocketError("EISCONN", f"connect in {sock.state.value}")
        self.tcp.ip.check_route(address)
        if self.tcp.ip.is_broadcast(address) or address.is_multicast:
            # RFC 1122 4.2.3.10 / RFC 9293 3.9.2.3: never open to a broadcast or multicast
            # address (Linux tcp_v4_connect: ENETUNREACH).
            raise SocketError("ENETUNREACH", f"{address} is not a unicast address")
        if port == 0:
            raise SocketError("ECONNREFUSED", "port 0")
        if not sock.bound:
            port_chosen = self._ephemeral_port()
            if port_chosen == 0:
                raise SocketError("EAGAIN", "no free port")
            sock.local_port = port_chosen
        if sock.local_address == ANY:
            sock.local_address = self.tcp.ip.address
        remote = (address, port)
        if (sock.local, remote) in self.tcp.connections:
            raise SocketError("EADDRNOTAVAIL", "that connection exists")
        sock.remote = remote
        sock.error = None
        sock.done = sock.rcv_shutdown = sock.snd_shutdown = False
        self.tcp.connections[(sock.local, remote)] = sock
        self.tcp.update_mss(sock, now)
        sock.iss = self.tcp.initial_sequence(sock, now)
        sock.snd_una = sock.snd_nxt = sock.snd_max = sock.small_segment_end = sock.iss
        sock.send_start = seq.add(sock.iss, 1)
        change_state(sock, Event.ACTIVE_OPEN, now)
        sock.connecting = True
        output.send_syn(self.tcp, sock, now)
        raise SocketError("EINPROGRESS", "handshake started")

    def finish_connect(self, sock: TcpSocket) -> bool:
        """True once connected; False while the handshake runs; raises its failure."""
        if sock.state in OPENING:
            return False
        sock.connecting = False
        if sock.state is State.CLOSED:
            raise SocketError(sock.take_error() or "ECONNABORTED", "connection failed")
        return True

    # --- data ---------------------------------------------------------------------------

    def sendto(self, sock: TcpSocket, data: bytes, destination: Endpoint | None,
               flags: set[str], now: Nanoseconds) -> int:
        """tcp_sendmsg: the data joins the send buffer as far as it has room."""
        if sock.state in OPENING:
            if sock.error is not None:
                raise SocketError(sock.take_error() or "EPIPE")
            raise SocketError("EAGAIN", "still connecting")
        if sock.error is not None:
            raise SocketError(sock.take_error() or "EPIPE", "reported from the connection")
        if sock.snd_shutdown or sock.state not in (State.ESTABLISHED, State.CLOSE_WAIT):
            raise SocketError("EPIPE", f"cannot send in {sock.state.value}")
        if not data:
            return 0
        room = sock.send_space
        if room == 0:
            raise SocketError("EAGAIN", "the send buffer is full")
        taken = data[:room]
        sock.send_buffer += taken
        if "MSG_OOB" in flags:
            # RFC 9293 3.8.5: the urgent pointer follows the last octet; Linux pushes
            # urgent data at once, so Nagle does not hold it.
            sock.snd_up = seq.add(sock.send_start, len(sock.send_buffer))
            sock.small_segment_end = sock.snd_una
        output.transmit(self.tcp, sock, now)
        return len(taken)

    def recvmsg(self, sock: TcpSocket, size: int, flags: set[str],
                now: Nanoseconds) -> Message:
        if size < 0:
            raise SocketError("EINVAL", "negative size")
        if "MSG_ERRQUEUE" in flags:
            raise SocketError("EAGAIN", "the error queue is empty")
        if "MSG_OOB" in flags:
            # Linux tcp_recv_urg: the urgent octet, once; EINVAL when there is none or it
            # stays in the stream (SO_OOBINLINE).
            if sock.urgent_octet is None or sock.option("SO_OOBINLINE"):
                raise SocketError("EINVAL", "no urgent data")
            octet = sock.urgent_octet
            if "MSG_PEEK" not in flags:
                sock.urgent_octet = None
            return Message(octet[:size], 1, ["MSG_OOB"], None)
        if sock.state is State.LISTEN:
            raise SocketError("ENOTCONN", "recv on a listener")
        if sock.receive_buffer:
            waiting = "MSG_WAITALL" in flags and len(sock.receive_buffer) < size
            if waiting and not sock.fin_received and not sock.nonblocking and sock.error is None:
                raise SocketError("EAGAIN", "MSG_WAITALL: not all there yet")
            # Linux tcp_recvmsg: a read stops before the urgent mark, and one at the mark
            # begins there: SIOCATMARK tells the reader where urgent data ends.
            limit = min(size, sock.urgent_mark) if sock.urgent_mark else size
            data = bytes(sock.receive_buffer[:limit])
            if "MSG_PEEK" not in flags:
                del sock.receive_buffer[:limit]
                self._read_past(sock, len(data))
                if sock.state in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2) \
                        and output.window_would_open(sock):
                    output.send_ack(self.tcp, sock, now)  # a window update
            return Message(data, len(data), [], None)
        # Linux tcp_recvmsg, in its order: end of stream, error, shut down, not connected.
        if sock.fin_received:
            return Message(b"", 0, [], None)
        if sock.error is not None:
            raise SocketError(sock.take_error() or "EIO", "reported from the connection")
        if sock.rcv_shutdown:
            return Message(b"", 0, [], None)
        if sock.state is State.CLOSED:
            raise SocketError("ENOTCONN", "not connected")
        raise SocketError("EAGAIN", "no data")

    def _read_past(self, sock: TcpSocket, length: int) -> None:
        """``length`` octets were read: the mark comes nearer, or is passed and urgent
        data is over (Linux clears urg_data: MSG_OOB finds none any more)."""
        if sock.urgent_mark is None or not length:
            return
        if sock.urgent_mark == 0:
            sock.urgent_mark, sock.urgent_octet = None, None
        else:
            sock.urgent_mark -= length

    def shutdown(self, sock: TcpSocket, how: str, now: Nanoseconds) -> None:
        """Linux inet_shutdown / tcp_shutdown."""
        read, write = how in ("SHUT_RD", "SHUT_RDWR"), how in ("SHUT_WR", "SHUT_RDWR")
        if sock.state is State.CLOSED:
            raise SocketError("ENOTCONN", "shutdown on an unconnected socket")
        if sock.state is State.LISTEN:
            if read:
                listener.close_listener(self.tcp, sock, now)
            return
        if sock.state is State.SYN_SENT:
            self.tcp.terminate(sock, Event.CLOSE, now, None)
            return
        if read:
            # As Linux: queued and arriving data is still read, then 0 (never a wait).
            sock.rcv_shutdown = True
        if write:
            self._send_fin(sock, now)

    # --- options ------------------------------------------------------------------------

    def setsockopt(self, sock: TcpSocket, name: str, value: int | str | tuple[int, int],
                   now: Nanoseconds) -> None:
        if name == "SO_LINGER":
            if not isinstance(value, tuple):
                raise SocketError("EINVAL", "SO_LINGER takes (onoff, linger)")
            sock.linger = (1 if value[0] else 0, max(0, value[1]))
            return
        value = checked_option(sock.options, name, value, sock.settings, transport="tcp")
        if not isinstance(value, int):  # IP_MTU_DISCOVER's mode
            sock.options[name] = value
            return
        if name in OPTION_RANGES:
            low, high = OPTION_RANGES[name]
            if not low <= value <= high:
                raise SocketError("EINVAL", f"{name} out of range")
        if name == "SO_SNDBUF":
            value = max(MIN_SEND_BUFFER, min(value, sock.settings.send_buffer) * 2)
            sock.sndbuf_locked = True
        if name == "TCP_MAXSEG":
            if value and not MIN_USER_MSS <= value <= 65535 - 40:
                raise SocketError("EINVAL", "TCP_MAXSEG out of range")
            sock.user_mss = value
            return
        sock.options[name] = value
        if name == "TCP_NODELAY" and value:
            output.transmit(self.tcp, sock, now)  # Linux pushes what waited
        if name in ("SO_KEEPALIVE", "TCP_KEEPIDLE") and sock.state is State.ESTABLISHED:
            sock.keepalive_at = (now + sock.option("TCP_KEEPIDLE") * SECOND
                                 if sock.option("SO_KEEPALIVE") else None)

    def getsockopt(self, sock: TcpSocket, name: str, now: Nanoseconds
                   ) -> int | str | tuple[int, int] | None:
        if name == "SO_ERROR":
            # Linux: sk_err, else sk_err_soft (the soft ICMP error), each cleared.
            error = sock.take_error()
            if error is None:
                error, sock.soft_error = sock.soft_error, None
            return error
        if name == "SO_TYPE":
            return "tcp"
        if name == "SO_LINGER":
            return sock.linger
        if name == "TCP_MAXSEG":
            if sock.user_mss and sock.state in (State.CLOSED, State.LISTEN):
                return sock.user_mss
            return sock.mss if sock.remote is not None else self.tcp.settings.tcp_default_mss
        if name == "IP_MTU":
            connected = sock.state not in (State.CLOSED, State.LISTEN)
            return connected_mtu(self.tcp.ip, sock.remote if connected else None, now)
        return known_option(sock.options, name, "tcp")

    def ioctl(self, sock: TcpSocket, request: str) -> int:
        if request == "SIOCATMARK":
            # RFC 9293 3.8.5 (MUST-33): whether the next octet read is the mark.
            return 1 if sock.urgent_mark == 0 else 0
        if request not in ("FIONREAD", "SIOCOUTQ"):
            raise Unsupported(f"ioctl {request}")
        if sock.state is State.LISTEN:
            raise SocketError("EINVAL", f"{request} on a listener")
        if request == "FIONREAD":
            return len(sock.receive_buffer)  # Linux SIOCINQ: bytes ready to read
        return len(sock.send_buffer)  # SIOCOUTQ: bytes not yet acknowledged

    def events(self, sock: TcpSocket) -> set[str]:
        """The poll events that hold now (Linux tcp_poll)."""
        if sock.state is State.LISTEN:
            queued = sock.listener is not None and bool(sock.listener.accept_queue)
            return {"POLLIN", "POLLRDNORM"} if queued else set()
        events: set[str] = set()
        inline_urgent = sock.urgent_mark is not None and sock.option("SO_OOBINLINE")
        if sock.urgent_octet is not None or inline_urgent:
            events.add("POLLPRI")  # urgent data waits (Linux TCP_URG_VALID)
        if sock.error is not None:
            events.add("POLLERR")
        if (sock.rcv_shutdown and sock.snd_shutdown) or sock.state is State.CLOSED:
            events.add("POLLHUP")
        if sock.rcv_shutdown:
            events |= {"POLLIN", "POLLRDNORM", "POLLRDHUP"}
        if sock.state not in OPENING:
            if sock.receive_buffer:
                events |= {"POLLIN", "POLLRDNORM"}
            if sock.snd_shutdown or sock.send_space > 0:
                events |= {"POLLOUT", "POLLWRNORM"}
        return events

    # --- ports --------------------------------------------------------------------------

    def _everyone(self) -> list[TcpSocket]:
        seen = {id(sock): sock for sock in self.tcp.sockets.values()}
        for sock in self.tcp.connections.values():
            seen.setdefault(id(sock), sock)
        return list(seen.values())

    def _holds_port(self, sock: TcpSocket) -> bool:
        if sock.state is not State.CLOSED:
            return True
        return sock.handle is not None and sock.bound and (not sock.done or sock.port_locked)

    def _port_taken(self, sock: TcpSocket, address: IPv4Address, port: int) -> bool:
        """Linux inet_bind_conflict: the port is taken unless the addresses differ, or
        both sockets set SO_REUSEADDR and the other is not listening (a TIME-WAIT
        connection keeps the flag of its socket)."""
        for other in self._everyone():
            if other is sock or other.local_port != port or not self._holds_port(other):
                continue
            if not addresses_overlap(address, other.local_address):
                continue
            if (sock.option("SO_REUSEADDR") and other.option("SO_REUSEADDR")
                    and other.state is not State.LISTEN):
                continue
            return True
        return False

    def _ephemeral_port(self) -> int:
        used = {sock.local_port for sock in self._everyone() if self._holds_port(sock)}
        return ephemeral_port(self.tcp.settings, self.tcp.rng, used)

    def peer_of(self, sock: TcpSocket) -> Endpoint:
        if sock.remote is None or sock.state in (State.CLOSED, State.SYN_SENT, State.LISTEN):
            raise SocketError("ENOTCONN", "not connected")
        return sock.remote


