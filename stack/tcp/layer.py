"""The TCP layer of the host: demultiplexing (connection by 4-tuple, then listener),
the reader of a segment chosen by its connection's state (``READERS``), RST for segments
nobody wants (RFC 9293 3.10.7.1), ICMP errors (RFC 1122 4.2.3.9, RFC 9293 3.9.2, RFC
1191), the timers of every connection, and the services the state modules ask for
(`stack.tcp.context.TcpContext`: terminate, MSS, ...). It asks IP only for
`stack.endpoints.IpService`. The socket calls are in ``calls`` (``TcpLayer.calls``)."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Final, Protocol

from stack.drops import DropLog
from stack.endpoints import Endpoint, IpService
from stack.icmp import UNREACHABLE_ERRORS, ReceivedError
from stack.settings import Settings
from stack.tcp import arrival, listener, output, seq, time_wait, timers
from stack.tcp.calls import TcpCalls
from stack.tcp.connection import TcpSocket
from stack.tcp.context import Connections, TcpContext
from stack.tcp.isn import IsnGenerator
from stack.tcp.options import lenient_options
from stack.tcp.state import Event, State, change_state
from stack.timing import Nanoseconds, earliest
from stack.wire.checksum import transport_checksum
from stack.wire.errors import WireError
from stack.wire.icmp import IcmpType, UnreachableCode
from stack.wire.ipv4 import IpProtocol, Ipv4Packet
from stack.wire.tcp import MIN_HEADER_LENGTH, TcpFlags, TcpSegment

A, S, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.RST
# RFC 9293 3.7.1: the MSS counts neither the IP nor the TCP header (20 + 20 bytes).
HEADERS: int = 40


class SegmentReader(Protocol):
    """A module that reads the segments of a connection in the states it is given."""

    def segment_arrives(self, tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                        now: Nanoseconds) -> None: ...


# Who reads a segment for a connection, by its state (as h11's READERS): TIME-WAIT has a
# module of its own; every other state follows RFC 9293 3.10.7.3-4 in ``arrival``. The
# modules are looked up at each segment, so a replaced function takes effect.
READERS: Final[dict[State, SegmentReader]] = {
    state: time_wait if state is State.TIME_WAIT else arrival
    for state in State if state not in (State.CLOSED, State.LISTEN)
}


class TcpLayer:
    def __init__(self, ip: IpService, drops: DropLog, settings: Settings,
                 rng: random.Random) -> None:
        self.ip = ip
        self.drops = drops
        self.settings = settings
        self.rng = rng
        self.sockets: dict[int, TcpSocket] = {}  # by handle: what the user holds
        self.connections: Connections = {}  # by (local, remote): everything with a peer
        self.isn = IsnGenerator(rng.randbytes(16))  # RFC 6528: a secret per boot
        self.clock: Nanoseconds = 0  # the latest time seen, for calls that take none
        self.calls = TcpCalls(self)

    # --- from the IP layer --------------------------------------------------------------

    def receive(self, packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        self.clock = max(self.clock, now)
        header = packet.header
        if broadcast or header.dst.is_multicast:
            # RFC 1122 4.2.3.10: a SYN (or any segment) to a broadcast address is dropped.
            self.record_drop(now, "tcp.broadcast_destination", str(header.dst))
            return
        segment = parse_segment(packet)
        if isinstance(segment, str):
            self.record_drop(now, segment)
            return
        local, remote = (header.dst, segment.dst_port), (header.src, segment.src_port)
        conn = self.connections.get((local, remote))
        if conn is not None:
            if conn.ecn and header.tos & 0x03 == 0x03:
                conn.ecn_echo = True  # RFC 3168 6.1.3: Congestion Experienced
            READERS[conn.state].segment_arrives(self, conn, segment, now)
            return
        listening = self.listener_for(local)
        if listening is not None:
            listener.listen_arrives(self, listening, segment, local, remote, now)
            return
        # RFC 9293 3.10.7.1: CLOSED (no socket): any segment but a RST draws a RST.
        self.record_drop(now, "tcp.no_socket", f"port {segment.dst_port}")
        if R not in segment.flags:
            self.send_reset_reply(segment, local, remote, now)

    def icmp_error(self, error: ReceivedError, now: Nanoseconds) -> str | None:
        """RFC 1122 4.2.3.9 / RFC 9293 3.9.2 and Linux tcp_v4_err; returns a drop reason
        when the error concerns no connection."""
        quoted = error.quoted_header
        data = error.quoted_data
        local = (quoted.src, int.from_bytes(data[0:2], "big"))
        remote = (quoted.dst, int.from_bytes(data[2:4], "big"))
        sock = self.connections.get((local, remote))
        if sock is None or sock.state in (State.TIME_WAIT, State.CLOSED):
            return "tcp.error_for_no_connection"
        quoted_seq = int.from_bytes(data[4:8], "big")
        if not seq.between(sock.snd_una, quoted_seq, sock.snd_max):
            return "tcp.error_out_of_window"  # not a segment in flight: forged or stale
        if error.type == IcmpType.DESTINATION_UNREACHABLE:
            if error.code == UnreachableCode.FRAGMENTATION_NEEDED:
                # RFC 1191 / RFC 9293 3.7.2: a smaller path MTU lowers the MSS; what was
                # in flight goes again at once in smaller segments.
                if sock.options["IP_MTU_DISCOVER"] != "IP_PMTUDISC_DONT":
                    self._mtu_lowered(sock, now)
                return None
            errno = UNREACHABLE_ERRORS.get(error.code, ("EHOSTUNREACH", False))[0]
        elif error.type == IcmpType.TIME_EXCEEDED:
            errno = "EHOSTUNREACH"
        elif error.type == IcmpType.PARAMETER_PROBLEM:
            errno = "EPROTO"
        else:
            return None  # Source Quench (RFC 6633), Redirect: nothing for TCP
        if sock.state in (State.SYN_SENT, State.SYN_RECEIVED) and (
            error_is_hard(error)
            or (sock.parent is None and self.settings.tcp_soft_error_ends_connect)
        ):
            # A hard error ends an opening connection (RFC 1122 4.2.3.9); a soft one only
            # with tcp_soft_error_ends_connect (Linux), else it is kept as below.
            self.terminate(sock, Event.ABORT, now, None if sock.parent else errno)
            return None
        if self.settings.tcp_hard_error_aborts and error_is_hard(error):
            # RFC 1122 4.2.3.9: hard errors SHOULD abort the connection.
            self.terminate(sock, Event.ABORT, now, errno)
            return None
        # RFC 1122 4.2.3.9: soft errors do not abort; they are reported to SO_ERROR and
        # if the connection later times out. With IP_RECVERR Linux reports them at once.
        if sock.option("IP_RECVERR"):
            sock.error = errno
        else:
            sock.soft_error = errno
        return None

    def poll(self, now: Nanoseconds) -> None:
        self.clock = max(self.clock, now)
        for sock in list(self.connections.values()):
            due = timers.next_timer(sock)
            if due is not None and due <= now:
                timers.run_timers(self, sock, now)

    def next_timer(self) -> Nanoseconds | None:
        return earliest(*(timers.next_timer(sock) for sock in self.connections.values()))

    # --- what the state modules use -----------------------------------------------------

    def record_drop(self, now: Nanoseconds, reason: str, detail: str = "") -> None:
        self.drops.record(now, reason, detail)

    def listener_for(self, local: Endpoint) -> TcpSocket | None:
        best = None
        for sock in self.sockets.values():
            if sock.state is State.LISTEN and sock.local_port == local[1]:
                if sock.local_address == local[0]:
                    return sock
                if sock.local_address == IPv4Address("0.0.0.0"):
                    best = sock
        return best

    def new_connection(self, parent: TcpSocket, local: Endpoint, remote: Endpoint
                       ) -> TcpSocket:
        """A connection made by a listener: a copy of it, in LISTEN, with its options."""
        child = TcpSocket(None, self.settings, options=dict(parent.options),
                          state=State.LISTEN, linger=parent.linger)
        child.local_address, child.local_port = local
        child.remote = remote
        self.connections[(local, remote)] = child
        return child

    def initial_sequence(self, sock: TcpSocket, now: Nanoseconds) -> int:
        return self.isn.isn(sock.local, sock.peer, now)  # RFC 6528

    def update_mss(self, sock: TcpSocket, now: Nanoseconds) -> None:
        """RFC 9293 3.7.1: we announce the path MTU less 40; we send at most the peer's
        MSS (536 without the option, MUST-15), and never more than our path MTU less 40."""
        sock.path_mtu = self.ip.path_mtu(sock.peer[0], now)
        limit = sock.path_mtu - HEADERS
        sock.rcv_mss = min(limit, sock.user_mss) if sock.user_mss else limit
        peer = sock.peer_mss if sock.peer_mss is not None else self.settings.tcp_default_mss
        mss = max(min(peer, limit, sock.user_mss or limit), 8)
        sock.mss = mss
        sock.congestion.set_mss(mss)

    def _mtu_lowered(self, sock: TcpSocket, now: Nanoseconds) -> None:
        before = sock.mss
        self.update_mss(sock, now)
        if sock.mss < before and sock.flight > 0:
            # Go back: send it all again in smaller segments (Nagle holds none of it).
            sock.snd_nxt = sock.small_segment_end = sock.snd_una
            sock.rtt_seq = None
            if sock.syn_unacknowledged:
                output.send_syn(self, sock, now)
            else:
                output.transmit(self, sock, now)

    def terminate(self, sock: TcpSocket, event: Event, now: Nanoseconds,
                  errno: str | None) -> None:
        """The connection is over: CLOSED, every timer stopped, the error (if any) left
        for the user's next call."""
        if sock.state is not State.CLOSED:
            change_state(sock, event, now)
        if errno is not None:
            sock.error = errno
        sock.done = True
        sock.connecting = sock.connecting and errno is not None
        sock.rcv_shutdown = sock.snd_shutdown = True
        sock.retransmit_at = sock.delayed_ack_at = sock.persist_at = None
        sock.keepalive_at = sock.time_wait_at = sock.fin_wait_2_at = None
        if sock.remote is not None and self.connections.get((sock.local, sock.peer)) is sock:
            del self.connections[(sock.local, sock.peer)]
        parent = sock.parent
        if parent is not None and parent.listener is not None and (
                sock in parent.listener.syn_queue):
            parent.listener.forget(sock)

    def send_reset_reply(self, segment: TcpSegment, local: Endpoint, remote: Endpoint,
                         now: Nanoseconds) -> None:
        """RFC 9293 3.10.7.1: a RST in reply to ``segment``. If it had ACK,
        <SEQ=SEG.ACK><CTL=RST>; else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
        if R in segment.flags:
            return  # never a RST for a RST
        if A in segment.flags:
            reply = TcpSegment(local[1], remote[1], seq=segment.ack, flags=R)
        else:
            reply = TcpSegment(local[1], remote[1], seq=0, flags=R | A,
                               ack=seq.add(segment.seq, segment.sequence_length))
        self.ip.send_datagram(
            now, remote[0], reply.emit(local[0], remote[0]), ttl=self.settings.default_ttl,
            tos=0, dont_fragment=self.settings.path_mtu_discovery,
            fragment_size=self.ip.path_mtu(remote[0], now), protocol=IpProtocol.TCP,
        )


def error_is_hard(error: ReceivedError) -> bool:
    """RFC 1122 4.2.3.9: protocol and port unreachable are hard, net and host unreachable
    soft; the other codes as Linux's icmp_err_convert (stack.icmp.UNREACHABLE_ERRORS)."""
    return error.type == IcmpType.DESTINATION_UNREACHABLE and UNREACHABLE_ERRORS.get(
        error.code, ("", False))[1]


def parse_segment(packet: Ipv4Packet) -> TcpSegment | str:
    """The segment, or the reason it is dropped. RFC 1122 4.2.2.5: options are parsed
    leniently: unknown ones skipped, and a malformed one (length zero, past the header)
    ends the walk, keeping the options before it, as Linux tcp_parse_options does."""
    header = packet.header
    try:
        return TcpSegment.parse(packet.payload, header.src, header.dst)
    except WireError as error:
        if error.reason != "tcp.bad_option_length":
            return error.reason
    raw = packet.payload
    if transport_checksum(header.src, header.dst, IpProtocol.TCP, bytes(raw)) != 0:
        return "tcp.bad_checksum"
    header_length = (raw[12] >> 4) * 4
    blank = bytes(raw[:MIN_HEADER_LENGTH]) + b"\x01" * (header_length - MIN_HEADER_LENGTH)
    try:
        segment = TcpSegment.parse(blank + bytes(raw[header_length:]), header.src,
                                   header.dst, verify_checksum=False)
    except WireError as error:
        return error.reason
    options = lenient_options(bytes(raw[MIN_HEADER_LENGTH:header_length]))
    return replace(segment, options=options, checksum=None)
