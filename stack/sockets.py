"""The socket API of the reference stack: POSIX calls by handle, errors by errno name.

Every call is non-blocking at heart: a call that would block raises
``SocketError("EAGAIN")``, and whoever runs the stack (``stack/io``) decides whether to
report that or to wait for the stack to change and call again, as ``would_block`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, Final

from stack.errors import SocketError, Unsupported
from stack.host import Host
from stack.timing import Nanoseconds
from stack.udp import Endpoint, Message, UdpSocket

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
        self._sockets: dict[int, UdpSocket] = {}

    def socket(self, kind: str) -> int:
        if kind == "tcp":
            raise Unsupported("TCP is not implemented in the reference stack yet")
        if kind != "udp":
            raise SocketError("EPROTONOSUPPORT", f"socket type {kind!r}")
        handle = FIRST_HANDLE
        while handle in self._sockets:
            handle += 1
        self._sockets[handle] = self.host.udp.open(handle)
        return handle

    def close(self, handle: int, now: Nanoseconds) -> None:
        self.host.udp.close(self._take(handle), now)

    def bind(self, handle: int, address: IPv4Address, port: int) -> None:
        self.host.udp.bind(self._get(handle), address, port)

    def connect(self, handle: int, address: IPv4Address, port: int) -> None:
        self.host.udp.connect(self._get(handle), address, port)

    def listen(self, handle: int, backlog: int) -> None:
        raise SocketError("EOPNOTSUPP", "listen on a UDP socket")

    def accept(self, handle: int) -> Accepted:
        raise SocketError("EOPNOTSUPP", "accept on a UDP socket")

    def sendto(
        self, handle: int, data: bytes, destination: Endpoint | None, flags: set[str],
        now: Nanoseconds,
    ) -> int:
        return self.host.udp.sendto(self._get(handle), data, destination, flags, now)

    def recvmsg(self, handle: int, size: int, flags: set[str]) -> Message:
        return self.host.udp.recvmsg(self._get(handle), size, flags)

    def setsockopt(self, handle: int, name: str, value: int | str, now: Nanoseconds) -> None:
        self.host.udp.setsockopt(self._get(handle), name, value, now)

    def getsockopt(self, handle: int, name: str, now: Nanoseconds) -> int | str | None:
        return self.host.udp.getsockopt(self._get(handle), name, now)

    def ioctl(self, handle: int, request: str) -> int:
        return self.host.udp.ioctl(self._get(handle), request)

    def get_nonblocking(self, handle: int) -> bool:
        return self._get(handle).nonblocking

    def set_nonblocking(self, handle: int, nonblocking: bool) -> None:
        self._get(handle).nonblocking = nonblocking

    def shutdown(self, handle: int, how: str) -> None:
        if how not in ("SHUT_RD", "SHUT_WR", "SHUT_RDWR"):
            raise SocketError("EINVAL", f"shutdown how {how!r}")
        self.host.udp.shutdown(self._get(handle), how)

    def poll(self, handle: int, events: set[str]) -> set[str]:
        if handle not in self._sockets:
            return {"POLLNVAL"}
        return self._sockets[handle].events() & (events | ALWAYS_POLLED)

    def getsockname(self, handle: int) -> Endpoint:
        sock = self._get(handle)
        return sock.local_address, sock.local_port

    def getpeername(self, handle: int) -> Endpoint:
        sock = self._get(handle)
        if sock.remote is None:
            raise SocketError("ENOTCONN", "not connected")
        return sock.remote

    def would_block(self, handle: int, flags: set[str]) -> bool:
        """Whether an EAGAIN from a call with ``flags`` means "wait" rather than "report"."""
        sock = self._sockets.get(handle)
        return sock is not None and not sock.nonblocking and "MSG_DONTWAIT" not in flags

    def snapshot(self, now: Nanoseconds) -> dict[str, Any]:
        """Sockets, caches, drop counters and settings: the evidence of a case."""
        host = self.host
        return {
            "sockets": [
                self._describe(handle, sock) for handle, sock in sorted(self._sockets.items())
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

    def _describe(self, handle: int, sock: UdpSocket) -> dict[str, Any]:
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

    def _get(self, handle: int) -> UdpSocket:
        sock = self._sockets.get(handle)
        if sock is None:
            raise SocketError("EBADF", f"no socket {handle}")
        return sock

    def _take(self, handle: int) -> UdpSocket:
        sock = self._get(handle)
        del self._sockets[handle]
        return sock
