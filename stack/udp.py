"""UDP (RFC 768, RFC 1122 4.1) with the socket semantics of Linux udp(7).

`UdpLayer` demultiplexes received datagrams to sockets, answers closed ports and turns
ICMP errors into socket errors; `UdpSocket` holds one socket's state and its calls.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Final

from stack.endpoints import (
    ANY,
    Endpoint,
    ExtendedError,
    IpService,
    Message,
    PacketInfo,
    addresses_overlap,
    checked_option,
    connected_mtu,
    default_options,
    ephemeral_port,
    known_option,
)
from stack.errors import SocketError, Unsupported
from stack.icmp import ReceivedError, socket_error
from stack.settings import Settings
from stack.timing import Nanoseconds
from stack.wire.errors import WireError
from stack.wire.ipv4 import Ipv4Packet
from stack.wire.udp import HEADER_LENGTH, UdpDatagram

MAX_PAYLOAD: Final = 65535 - 20 - HEADER_LENGTH


@dataclass(frozen=True)
class _Queued:
    source: Endpoint
    payload: bytes
    cost: int
    # What IP passed up with the datagram (RFC 1122 3.2.1.6, 3.2.1.8, 4.1.3.5).
    destination: IPv4Address
    tos: int
    options: bytes


@dataclass
class UdpSocket:
    handle: int
    settings: Settings
    local_address: IPv4Address = ANY
    local_port: int = 0  # 0: not bound yet
    remote: Endpoint | None = None
    nonblocking: bool = False
    receive_queue: deque[_Queued] = field(default_factory=deque)
    error_queue: deque[ExtendedError] = field(default_factory=deque)
    pending_error: str | None = None  # Linux sk_err: reported once, by the next call
    received_bytes: int = 0  # charged against receive_buffer
    drops: int = 0
    read_shut: bool = False
    write_shut: bool = False
    corked: tuple[Endpoint, bytearray] | None = None
    options: dict[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = {
            **default_options(self.settings, receive_buffer=self.settings.receive_buffer,
                              send_buffer=self.settings.send_buffer),
            "SO_BROADCAST": 0,
            "IP_RECVOPTS": 0,
            "IP_RECVTOS": 0,
            "IP_PKTINFO": 0,
            "UDP_CORK": 0,
        }

    @property
    def bound(self) -> bool:
        return self.local_port != 0

    def take_error(self) -> str | None:
        error, self.pending_error = self.pending_error, None
        return error

    def raise_pending_error(self) -> None:
        error = self.take_error()
        if error is not None:
            raise SocketError(error, "reported from an earlier ICMP error")

    def events(self) -> set[str]:
        """The poll events that hold now (Linux datagram_poll)."""
        events = {"POLLOUT", "POLLWRNORM", "POLLWRBAND"}
        if self.receive_queue or self.read_shut:
            events |= {"POLLIN", "POLLRDNORM"}
        if self.pending_error is not None or self.error_queue:
            events.add("POLLERR")
        if self.read_shut:
            events.add("POLLRDHUP")
            if self.write_shut:
                events.add("POLLHUP")
        return events


class UdpLayer:
    def __init__(self, ip: IpService, settings: Settings, rng: random.Random) -> None:
        self.ip = ip
        self.settings = settings
        self.rng = rng
        self.sockets: dict[int, UdpSocket] = {}

    # --- socket calls -------------------------------------------------------------------

    def open(self, handle: int) -> UdpSocket:
        sock = self.sockets[handle] = UdpSocket(handle, self.settings)
        return sock

    def close(self, sock: UdpSocket, now: Nanoseconds) -> None:
        self.sockets.pop(sock.handle, None)

    def bind(
        self, sock: UdpSocket, address: IPv4Address, port: int, *, implicit: bool = False
    ) -> None:
        if sock.bound:
            raise SocketError("EINVAL", "already bound")
        if address not in (ANY, self.ip.address) and not self.ip.is_broadcast(address):
            raise SocketError("EADDRNOTAVAIL", f"{address} is not an address of this host")
        if port == 0:
            port = ephemeral_port(self.settings, self.rng,
                                  {other.local_port for other in self.sockets.values()})
            if port == 0:
                # Linux: bind() reports EADDRINUSE, the implicit bind of connect or a
                # send EAGAIN (inet_autobind).
                raise SocketError("EAGAIN" if implicit else "EADDRINUSE", "no free port")
        elif self._port_taken(sock, address, port):
            raise SocketError("EADDRINUSE", f"port {port} is in use")
        sock.local_address, sock.local_port = address, port

    def connect(self, sock: UdpSocket, address: IPv4Address, port: int) -> None:
        """RFC 1122 4.1.3.5 / udp(7): connect sets the default destination and makes the
        socket accept datagrams from that peer only."""
        self.ip.check_route(address)
        if self.ip.is_broadcast(address) and not sock.options["SO_BROADCAST"]:
            raise SocketError("EACCES", "broadcast destination without SO_BROADCAST")
        if not sock.bound:
            self.bind(sock, ANY, 0, implicit=True)
        if sock.local_address == ANY:
            # Linux ip4_datagram_connect: the socket takes the source address of the route.
            sock.local_address = self.ip.address
        sock.remote = (address, port)

    def sendto(
        self, sock: UdpSocket, data: bytes, destination: Endpoint | None, flags: set[str],
        now: Nanoseconds,
    ) -> int:
        if sock.write_shut:
            raise SocketError("EPIPE", "shut down for writing")
        sock.raise_pending_error()
        if sock.corked is not None:
            # Linux udp_sendmsg: data pending (UDP_CORK, MSG_MORE) is appended to, and an
            # address given now is ignored: the datagram has one destination (udp(7)).
            destination = sock.corked[0]
        elif destination is None:
            if sock.remote is None:
                raise SocketError("EDESTADDRREQ", "not connected and no destination given")
            else:
                destination = sock.remote
        address, port = destination
        if port == 0:
            raise SocketError("EINVAL", "destination port 0")
        self.ip.check_route(address)
        if self.ip.is_broadcast(address) and not sock.options["SO_BROADCAST"]:
            raise SocketError("EACCES", "broadcast destination without SO_BROADCAST")
        if not sock.bound:
            self.bind(sock, ANY, 0, implicit=True)
        if sock.options["UDP_CORK"] or "MSG_MORE" in flags or sock.corked is not None:
            pending = sock.corked[1] if sock.corked is not None else bytearray()
            if len(pending) + len(data) > MAX_PAYLOAD:
                raise SocketError("EMSGSIZE", "corked datagram too long")
            pending += data
            sock.corked = (destination, pending)
            if sock.options["UDP_CORK"] or "MSG_MORE" in flags:
                return len(data)
            sock.corked = None
            self._transmit(sock, destination, bytes(pending), now)
            return len(data)
        if len(data) > MAX_PAYLOAD:
            raise SocketError("EMSGSIZE", f"{len(data)} bytes do not fit one datagram")
        self._transmit(sock, destination, data, now)
        return len(data)

    def recvmsg(self, sock: UdpSocket, size: int, flags: set[str]) -> Message:
        if size < 0:
            raise SocketError("EINVAL", "negative size")
        if "MSG_ERRQUEUE" in flags:
            return self._receive_error(sock, size, flags)
        sock.raise_pending_error()
        if not sock.receive_queue:
            if sock.read_shut:
                return Message(b"", 0, [], None)
            raise SocketError("EAGAIN", "no datagram queued")
        queued = sock.receive_queue[0]
        if "MSG_PEEK" not in flags:
            sock.receive_queue.popleft()
            sock.received_bytes -= queued.cost
        # udp(7): one datagram per call; the rest of a longer one is discarded, MSG_TRUNC.
        truncated = len(queued.payload) > size
        options = sock.options
        return Message(
            queued.payload[:size],
            len(queued.payload),
            ["MSG_TRUNC"] if truncated else [],
            queued.source,
            # RFC 1122 4.1.3.2: IP options go up unchanged; Linux only when there are some.
            options=queued.options if options["IP_RECVOPTS"] and queued.options else None,
            tos=queued.tos if options["IP_RECVTOS"] else None,  # RFC 1122 4.1.4
            # RFC 1122 4.1.3.5: the specific destination; a host with one address
            # answers from it (Linux fib_compute_spec_dst).
            pktinfo=PacketInfo(self.ip.interface_index, self.ip.address, queued.destination)
            if options["IP_PKTINFO"] else None,
        )

    def uncork(self, sock: UdpSocket, now: Nanoseconds) -> None:
        if sock.corked is not None:
            destination, pending = sock.corked
            sock.corked = None
            self._transmit(sock, destination, bytes(pending), now)

    def setsockopt(self, sock: UdpSocket, name: str, value: int | str, now: Nanoseconds) -> None:
        value = checked_option(sock.options, name, value, self.settings, transport="udp")
        sock.options[name] = value
        if name == "UDP_CORK" and not value:
            self.uncork(sock, now)

    def getsockopt(self, sock: UdpSocket, name: str, now: Nanoseconds) -> int | str | None:
        if name == "SO_ERROR":
            return sock.take_error()
        if name == "SO_TYPE":
            return "udp"
        if name == "IP_MTU":
            return connected_mtu(self.ip, sock.remote, now)
        return known_option(sock.options, name, "udp")

    def ioctl(self, sock: UdpSocket, request: str) -> int:
        if request == "FIONREAD":
            # Linux: the size of the next datagram's payload, 0 when none is queued.
            return len(sock.receive_queue[0].payload) if sock.receive_queue else 0
        if request == "SIOCOUTQ":
            # Bytes the socket holds that are not yet on the wire: a corked datagram.
            return len(sock.corked[1]) if sock.corked is not None else 0
        raise Unsupported(f"ioctl {request}")

    def shutdown(self, sock: UdpSocket, how: str) -> None:
        sock.read_shut |= how in ("SHUT_RD", "SHUT_RDWR")
        sock.write_shut |= how in ("SHUT_WR", "SHUT_RDWR")
        if sock.remote is None:
            raise SocketError("ENOTCONN", "shutdown on an unconnected socket")

    # --- from the IP layer --------------------------------------------------------------

    def receive(self, packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> str | None:
        """Deliver a datagram. Returns None when delivered, "udp.port_unreachable" when
        no socket wants it (the caller answers with ICMP), or another drop reason."""
        header = packet.header
        try:
            datagram = UdpDatagram.parse(packet.payload, header.src, header.dst)
        except WireError as error:
            return error.reason  # RFC 1122 4.1.3.4: a bad checksum is silently discarded
        source = (header.src, datagram.src_port)
        if broadcast:
            receivers = [
                sock for sock in self.sockets.values()
                if sock.local_port == datagram.dst_port and self._accepts(sock, header.dst, source)
            ]
        else:
            best = self._lookup(header.dst, datagram.dst_port, source)
            receivers = [best] if best is not None else []
        if not receivers:
            return "udp.port_unreachable"
        cost = len(datagram.payload) + self.settings.datagram_overhead
        queued = _Queued(source, datagram.payload, cost, header.dst, header.tos, header.options)
        reason = None
        for sock in receivers:
            reason = self._enqueue(sock, queued) or reason
        return reason

    def icmp_error(self, error: ReceivedError, now: Nanoseconds) -> str | None:
        """RFC 1122 4.1.3.3: pass an ICMP error up to the socket that sent the datagram.
        Returns a drop reason when no socket is concerned."""
        quoted = error.quoted_header
        # The quote holds at least the 8-byte UDP header (checked by read_error).
        source_port = int.from_bytes(error.quoted_data[0:2], "big")
        destination = (quoted.dst, int.from_bytes(error.quoted_data[2:4], "big"))
        sock = self._lookup(quoted.src, source_port, destination)
        if sock is None:
            return "udp.error_for_no_socket"
        mode = sock.options["IP_MTU_DISCOVER"]
        reported = socket_error(error, path_mtu_discovery=mode != "IP_PMTUDISC_DONT")
        if reported is None:
            return None
        errno, hard = reported
        # Linux __udp4_lib_err: without IP_RECVERR only hard errors on connected sockets
        # are reported; with it, every error is queued and becomes pending.
        if sock.options["IP_RECVERR"]:
            sock.error_queue.append(
                ExtendedError(errno, "ICMP", error.type, error.code, error.info,
                              (error.offender, 0), destination,
                              error.quoted_data[HEADER_LENGTH:])
            )
        elif not hard or sock.remote is None:
            return None
        sock.pending_error = errno
        return None

    def local_error(
        self, sock: UdpSocket, errno: str, destination: IPv4Address, info: int
    ) -> None:
        """An error found here, not by ICMP (ip_local_error): queued under IP_RECVERR.
        Like Linux, it carries no data, and its address is the destination with the
        socket's connected port (0 when unconnected); it leaves sk_err alone."""
        if sock.options["IP_RECVERR"]:
            port = sock.remote[1] if sock.remote is not None else 0
            sock.error_queue.append(
                ExtendedError(errno, "LOCAL", 0, 0, info, None, (destination, port), b"")
            )

    # --- internals ----------------------------------------------------------------------

    def _transmit(
        self, sock: UdpSocket, destination: Endpoint, payload: bytes, now: Nanoseconds
    ) -> None:
        address, port = destination
        mode = sock.options["IP_MTU_DISCOVER"]
        # Linux ip_setup_cork: every mode but PROBE sizes datagrams by the path MTU.
        mtu = self.ip.link_mtu if mode == "IP_PMTUDISC_PROBE" else self.ip.path_mtu(address, now)
        total = 20 + HEADER_LENGTH + len(payload)
        if mode in ("IP_PMTUDISC_DO", "IP_PMTUDISC_PROBE") and total > mtu:
            # RFC 1191 3: with DF required, a datagram above the path MTU is refused.
            self.local_error(sock, "EMSGSIZE", address, mtu)
            raise SocketError("EMSGSIZE", f"{total}-byte datagram, path MTU {mtu}")
        # RFC 1191 3: DF set while the datagram fits (WANT); DONT fragments instead.
        dont_fragment = mode != "IP_PMTUDISC_DONT" and total <= mtu
        datagram = UdpDatagram(sock.local_port, port, payload)
        source = sock.local_address if sock.local_address != ANY else self.ip.address
        ttl = sock.options["IP_TTL"]
        tos = sock.options["IP_TOS"]
        assert isinstance(ttl, int) and isinstance(tos, int)
        self.ip.send_datagram(
            now, address, datagram.emit(source, address),
            ttl=ttl, tos=tos, dont_fragment=dont_fragment, fragment_size=mtu,
        )

    def _receive_error(self, sock: UdpSocket, size: int, flags: set[str]) -> Message:
        if not sock.error_queue:
            raise SocketError("EAGAIN", "the error queue is empty")
        error = sock.error_queue[0] if "MSG_PEEK" in flags else sock.error_queue.popleft()
        if "MSG_PEEK" not in flags:
            # Linux sock_dequeue_err_skb: a following ICMP error becomes sk_err; without
            # one, reading an ICMP error clears sk_err (a local one leaves it).
            following = sock.error_queue[0] if sock.error_queue else None
            if following is not None and following.origin == "ICMP":
                sock.pending_error = following.errno
            elif error.origin == "ICMP":
                sock.pending_error = None
        truncated = len(error.payload) > size
        return Message(
            error.payload[:size],
            len(error.payload),
            ["MSG_ERRQUEUE"] + (["MSG_TRUNC"] if truncated else []),
            error.destination,
            error,
        )

    def _enqueue(self, sock: UdpSocket, queued: _Queued) -> str | None:
        if sock.read_shut:
            sock.drops += 1
            return "udp.socket_shut_down"
        receive_buffer = sock.options["SO_RCVBUF"]
        assert isinstance(receive_buffer, int)
        if sock.receive_queue and sock.received_bytes + queued.cost > receive_buffer:
            sock.drops += 1
            return "udp.receive_buffer_full"
        sock.receive_queue.append(queued)
        sock.received_bytes += queued.cost
        return None

    def _accepts(self, sock: UdpSocket, destination: IPv4Address, source: Endpoint) -> bool:
        if sock.local_address not in (ANY, destination):
            return False
        return sock.remote is None or sock.remote == source

    def _lookup(self, destination: IPv4Address, port: int, source: Endpoint) -> UdpSocket | None:
        """The socket for a datagram: a connected match beats a bound one, a specific
        local address beats the wildcard (Linux compute_score)."""
        best, best_score = None, -1
        for sock in self.sockets.values():
            if sock.local_port != port or not self._accepts(sock, destination, source):
                continue
            score = (2 if sock.remote is not None else 0) + (sock.local_address != ANY)
            if score > best_score:
                best, best_score = sock, score
        return best

    def _port_taken(self, sock: UdpSocket, address: IPv4Address, port: int) -> bool:
        for other in self.sockets.values():
            if other is sock or other.local_port != port:
                continue
            if not addresses_overlap(address, other.local_address):
                continue
            if sock.options["SO_REUSEADDR"] and other.options["SO_REUSEADDR"]:
                continue
            return True
        return False
