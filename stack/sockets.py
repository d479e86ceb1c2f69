"""The socket API of the reference stack: POSIX calls by handle, errors by errno name.

Every call is non-blocking at heart: a call that would block raises
``SocketError("EAGAIN")``, and whoever runs the stack (``stack/io``) decides whether to
report that or to wait for the stack to change and call again, as ``would_block`` says.
A TCP connect raises EINPROGRESS and ``finish_connect`` tells when it is done; a TCP
close with SO_LINGER returns a ``Linger`` to wait on.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final

from stack.endpoints import Endpoint, Message
from stack.errors import SocketError, Unsupported
from stack.host import Host
from stack.tcp.calls import Linger
from stack.tcp.connection import TcpSocket
from stack.timing import Nanoseconds
from stack.udp import UdpSocket

OptionValue = int | str | tuple[int, int]

FIRST_HANDLE: Final = 3  # like file descriptors, after stdin, stdout and stderr
# poll(2): these are reported whether or not they were asked for.
ALWAYS_POLLED: Final = frozenset({"POLLERR", "POLLHUP", "POLLNVAL"})


@dataclass(frozen=True)
class Accepted:
    handle: int
    peer: Endpoint


class SocketApi:
    def __init__(self, host: Host) -> None:
        self.host = host
        self._sockets: dict[int, UdpSocket | TcpSocket] = {}

    def socket(self, kind: str) -> int:
        if kind not in ("udp", "tcp"):
            raise SocketError("EPROTONOSUPPORT", f"socket type {kind!r}")
        handle = self._free_handle()
        self._sockets[handle] = (
            self.host.tcp.calls.open(handle) if kind == "tcp" else self.host.udp.open(handle)
        )
        return handle

    def close(self, handle: int, now: Nanoseconds) -> Linger | None:
        sock = self._take(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.close(sock, now)
        self.host.udp.close(sock, now)
        return None

    def bind(self, handle: int, address: IPv4Address, port: int) -> None:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            self.host.tcp.calls.bind(sock, address, port)
        else:
            self.host.udp.bind(sock, address, port)

    def connect(self, handle: int, address: IPv4Address, port: int,
                now: Nanoseconds = 0) -> None:
        """For TCP: raises EINPROGRESS once the SYN is sent (see ``finish_connect``)."""
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            self.host.tcp.calls.connect(sock, address, port, now)
        else:
            self.host.udp.connect(sock, address, port)

    def finish_connect(self, handle: int) -> bool:
        """A TCP connect under way: True when established, False while it runs; raises
        the reason it failed."""
        return self.host.tcp.calls.finish_connect(self._get_tcp(handle))

    def listen(self, handle: int, backlog: int, now: Nanoseconds = 0) -> None:
        sock = self._get(handle)
        if not isinstance(sock, TcpSocket):
            raise SocketError("EOPNOTSUPP", "listen on a UDP socket")
        self.host.tcp.calls.listen(sock, backlog, now)

    def accept(self, handle: int, now: Nanoseconds | None = None) -> Accepted:
        """``now`` is accepted for symmetry with the other calls; accept sends nothing."""
        sock = self._get(handle)
        if not isinstance(sock, TcpSocket):
            raise SocketError("EOPNOTSUPP", "accept on a UDP socket")
        child = self.host.tcp.calls.accept(sock)
        new_handle = self._free_handle()
        self.host.tcp.calls.adopt(child, new_handle)
        self._sockets[new_handle] = child
        return Accepted(new_handle, child.peer)

    def sendto(
        self, handle: int, data: bytes, destination: Endpoint | None, flags: set[str],
        now: Nanoseconds,
    ) -> int:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.sendto(sock, data, destination, flags, now)
        return self.host.udp.sendto(sock, data, destination, flags, now)

    def recvmsg(self, handle: int, size: int, flags: set[str],
                now: Nanoseconds | None = None) -> Message:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.recvmsg(sock, size, flags, self._now(now))
        return self.host.udp.recvmsg(sock, size, flags)

    def setsockopt(self, handle: int, name: str, value: OptionValue, now: Nanoseconds) -> None:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            self.host.tcp.calls.setsockopt(sock, name, value, now)
            return
        if name == "SO_LINGER" or isinstance(value, tuple):
            raise Unsupported(f"{name} on a UDP socket")
        self.host.udp.setsockopt(sock, name, value, now)

    def getsockopt(self, handle: int, name: str, now: Nanoseconds) -> OptionValue | None:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.getsockopt(sock, name, now)
        return self.host.udp.getsockopt(sock, name, now)

    def ioctl(self, handle: int, request: str) -> int:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.ioctl(sock, request)
        return self.host.udp.ioctl(sock, request)

    def get_nonblocking(self, handle: int) -> bool:
        return self._get(handle).nonblocking

    def set_nonblocking(self, handle: int, nonblocking: bool) -> None:
        self._get(handle).nonblocking = nonblocking

    def shutdown(self, handle: int, how: str, now: Nanoseconds | None = None) -> None:
        if how not in ("SHUT_RD", "SHUT_WR", "SHUT_RDWR"):
            raise SocketError("EINVAL", f"shutdown how {how!r}")
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            self.host.tcp.calls.shutdown(sock, how, self._now(now))
        else:
            self.host.udp.shutdown(sock, how)

    def poll(self, handle: int, events: set[str]) -> set[str]:
        sock = self._sockets.get(handle)
        if sock is None:
            return {"POLLNVAL"}
        if isinstance(sock, TcpSocket):
            returned = self.host.tcp.calls.events(sock)
        else:
            returned = sock.events()
        return returned & (events | ALWAYS_POLLED)

    def getsockname(self, handle: int) -> Endpoint:
        sock = self._get(handle)
        return sock.local_address, sock.local_port

    def getpeername(self, handle: int) -> Endpoint:
        sock = self._get(handle)
        if isinstance(sock, TcpSocket):
            return self.host.tcp.calls.peer_of(sock)
        if sock.remote is None:
            raise SocketError("ENOTCONN", "not connected")
        return sock.remote

    def would_block(self, handle: int, flags: set[str]) -> bool:
        """Whether an EAGAIN from a call with ``flags`` means "wait" rather than "report"."""
        sock = self._sockets.get(handle)
        return sock is not None and not sock.nonblocking and "MSG_DONTWAIT" not in flags

    def is_tcp(self, handle: int) -> bool:
        return isinstance(self._sockets.get(handle), TcpSocket)

    def snapshot(self, now: Nanoseconds) -> dict[str, Any]:
        """Sockets, caches, drop counters and settings: the evidence of a case."""
        host = self.host
        users = {id(sock) for sock in self._sockets.values()}
        return {
            "sockets": [
                self._describe(handle, sock) for handle, sock in sorted(self._sockets.items())
            ],
            "tcp_connections": [
                describe_tcp(None, sock) for sock in host.tcp.connections.values()
                if id(sock) not in users
            ],
            "settings": host.settings.as_dict(),
            "arp_cache": host.arp.entries(now),
            "path_mtu": host.pmtu.entries(now),
            "reassembly_pending": host.reassembler.pending(),
            "drops": dict(sorted(host.drops.counts.items())),
            "recent_drops": [
                {"reason": drop.reason, "detail": drop.detail} for drop in host.drops.recent
            ],
        }

    def _describe(self, handle: int, sock: UdpSocket | TcpSocket) -> dict[str, Any]:
        if isinstance(sock, TcpSocket):
            return describe_tcp(handle, sock)
        return {
            "sock": handle,
            "type": "udp",
            "local": {"addr": str(sock.local_address), "port": sock.local_port},
            "peer": None
            if sock.remote is None
            else {"addr": str(sock.remote[0]), "port": sock.remote[1]},
            "queued": len(sock.receive_queue),
            "errors_queued": len(sock.error_queue),
            "pending_error": sock.pending_error,
            "drops": sock.drops,
        }

    def _now(self, now: Nanoseconds | None) -> Nanoseconds:
        return now if now is not None else self.host.tcp.clock

    def _free_handle(self) -> int:
        handle = FIRST_HANDLE
        while handle in self._sockets:
            handle += 1
        return handle

    def _get(self, handle: int) -> UdpSocket | TcpSocket:
        sock = self._sockets.get(handle)
        if sock is None:
            raise SocketError("EBADF", f"no socket {handle}")
        return sock

    def _get_tcp(self, handle: int) -> TcpSocket:
        sock = self._get(handle)
        if not isinstance(sock, TcpSocket):
            raise SocketError("EOPNOTSUPP", "not a TCP socket")
        return sock

    def _take(self, handle: int) -> UdpSocket | TcpSocket:
        sock = self._get(handle)
        del self._sockets[handle]
        return sock


def describe_tcp(handle: int | None, sock: TcpSocket) -> dict[str, Any]:
    return {
        "sock": handle,
        "type": "tcp",
        "state": sock.state.value,
        "local": {"addr": str(sock.local_address), "port": sock.local_port},
        "peer": None
        if sock.remote is None
        else {"addr": str(sock.remote[0]), "port": sock.remote[1]},
        "snd_una": sock.snd_una,
        "snd_nxt": sock.snd_nxt,
        "snd_wnd": sock.snd_wnd,
        "rcv_nxt": sock.rcv_nxt,
        "mss": sock.mss,
        "rto_ns": sock.rto.rto,
        "cwnd": sock.congestion.cwnd,
        "send_queued": len(sock.send_buffer),
        "receive_queued": len(sock.receive_buffer),
        "accept_queue": None if sock.listener is None else len(sock.listener.accept_queue),
        "syn_queue": None if sock.listener is None else len(sock.listener.syn_queue),
        "pending_error": sock.error,
        "soft_error": sock.soft_error,
        "history": [list(entry) for entry in sock.state_history[-8:]],
    }
