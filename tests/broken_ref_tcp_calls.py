"""The reference stack broken on purpose for the TCP cases about the user calls, closing,
the accept queue and malformed segments (suites/rfc9293/test_closing.py,
test_user_calls.py, test_accept_queue.py, test_malformed_segments.py), one behaviour at a
time; the segment-processing breakages are in tests/broken_ref_tcp.py.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of its TCP with a version that breaks one requirement, as a real buggy
stack would. The cases that check it must then fail (tests/test_tcp_cases_fail_on_broken_ref.py).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from stack.endpoints import Endpoint
from stack.host import Host
from stack.tcp import arrival, listener, output, time_wait, timers
from stack.tcp import layer as tcp_layer
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.state import Event, State
from stack.timing import Nanoseconds
from stack.wire.checksum import transport_checksum
from stack.wire.errors import WireError
from stack.wire.ipv4 import IpProtocol, Ipv4Packet
from stack.wire.tcp import Mss, TcpFlags, TcpSegment, UnknownOption

A, S, F, R = TcpFlags.ACK, TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST
TCP = IpProtocol.TCP

# ---- helpers ---------------------------------------------------------------------------


def _rewrite_received(host: Host,
                      rewrite: Callable[[bytearray, IPv4Address], bytes | str]) -> None:
    """Received TCP segments pass through ``rewrite`` (the IP payload as a bytearray, and
    the source address) before the TCP layer parses them; a string drops the segment with
    that reason."""
    original = tcp_layer.parse_segment

    def parse_segment(packet: Ipv4Packet) -> TcpSegment | str:
        rewritten = rewrite(bytearray(packet.payload), packet.header.src)
        if isinstance(rewritten, str):
            return rewritten
        header = dataclasses.replace(packet.header, total_length=None, checksum=None)
        return original(Ipv4Packet(header, rewritten))

    tcp_layer.parse_segment = parse_segment


def _checksum_holds(host: Host, raw: bytearray, source: IPv4Address) -> bool:
    return transport_checksum(source, host.address, TCP, bytes(raw)) == 0


def _summed(host: Host, raw: bytearray, source: IPv4Address) -> bytes:
    """The segment with its checksum made right (it came from ``source`` to the host)."""
    raw[16:18] = b"\0\0"
    struct.pack_into("!H", raw, 16, transport_checksum(source, host.address, TCP, bytes(raw)))
    return bytes(raw)


def _is_syn(raw: bytearray) -> bool:
    return len(raw) >= 20 and bool(raw[13] & S)


def _bad_option_length(raw: bytearray) -> bool:
    """Whether the options area holds an illegal length (what the strict codec refuses)."""
    try:
        TcpSegment.parse(bytes(raw), IPv4Address(0), IPv4Address(0), verify_checksum=False)
    except WireError as error:
        return error.reason == "tcp.bad_option_length"
    return False


def _parsed(transform: Callable[[TcpSegment, bytes], TcpSegment | str]) -> None:
    """Segments the TCP layer parsed pass through ``transform`` (with the raw options
    area) before anything acts on them."""
    original = tcp_layer.parse_segment

    def parse_segment(packet: Ipv4Packet) -> TcpSegment | str:
        segment = original(packet)
        if isinstance(segment, str):
            return segment
        raw = packet.payload
        return transform(segment, bytes(raw[20 : (raw[12] >> 4) * 4]))

    tcp_layer.parse_segment = parse_segment


# ---- closing and the user calls: RFC 9293 3.6, 3.10.1-3.10.5; RFC 1122 4.2.2.13 -----------


def no_receiving_after_local_close(host: Host) -> None:
    """Once the DUT closed its side, data from the peer is dropped: no half-open
    receiving (RFC 9293 3.6.1, 3.10.7.4 seventh check in FIN-WAIT-1 and -2)."""
    arrival.RECEIVING_STATES = frozenset({State.ESTABLISHED})


def send_in_any_state_succeeds(host: Host) -> None:
    """SEND where no connection can carry the data returns success and the data vanishes
    (RFC 9293 3.10.2: an error)."""
    original = host.tcp.calls.sendto

    def sendto(sock: TcpSocket, data: bytes, destination: Endpoint | None, flags: set[str],
               now: Nanoseconds) -> int:
        if sock.state not in (State.SYN_SENT, State.SYN_RECEIVED) and (
                sock.snd_shutdown or sock.state not in (State.ESTABLISHED, State.CLOSE_WAIT)):
            return len(data)
        return original(sock, data, destination, flags, now)

    host.tcp.calls.sendto = sendto  # type: ignore[method-assign]


def connect_on_a_connected_socket_succeeds(host: Host) -> None:
    """connect() on a connected socket returns success (RFC 9293 3.10.1: an error)."""
    original = host.tcp.calls.connect

    def connect(sock: TcpSocket, address: IPv4Address, port: int, now: Nanoseconds) -> None:
        if sock.state is State.ESTABLISHED:
            return
        original(sock, address, port, now)

    host.tcp.calls.connect = connect  # type: ignore[method-assign]


def connect_on_a_connected_socket_sends_a_syn(host: Host) -> None:
    """connect() on a connected socket fails with EISCONN, but sends a SYN first, as if
    it opened a second connection (RFC 9293 3.10.1: an error, nothing else)."""
    original = host.tcp.calls.connect

    def connect(sock: TcpSocket, address: IPv4Address, port: int, now: Nanoseconds) -> None:
        if sock.state is State.ESTABLISHED:
            output.emit(host.tcp, sock, now, sequence=sock.snd_nxt, flags=S,
                        options=(Mss(sock.rcv_mss),))
        original(sock, address, port, now)

    host.tcp.calls.connect = connect  # type: ignore[method-assign]


def fin_discards_unread_data(host: Host) -> None:
    """A FIN throws away the data not yet read (RFC 9293 3.10.3: data before the FIN is
    read first, then end of file)."""
    original = arrival.fin_arrives

    def fin_arrives(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        sock.receive_buffer.clear()
        original(tcp, sock, now)

    arrival.fin_arrives = fin_arrives


def fin_not_reported_to_the_reader(host: Host) -> None:
    """A FIN is acknowledged but never reported as end of file: a reader waits on (RFC 9293
    3.10.7.4 eighth check: "connection closing" to the user)."""
    original = arrival.fin_arrives

    def fin_arrives(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        original(tcp, sock, now)
        sock.fin_received = sock.rcv_shutdown = False

    arrival.fin_arrives = fin_arrives


def closing_skips_time_wait(host: Host) -> None:
    """After a simultaneous close the connection is deleted at once when its FIN is
    acknowledged: CLOSING goes to CLOSED, not TIME-WAIT (RFC 9293 3.6 case 2)."""
    original = time_wait.enter

    def enter(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if sock.state_history and sock.state_history[-1][1] == State.CLOSING.value:
            tcp.terminate(sock, Event.TIMEOUT, now, None)
            return
        original(tcp, sock, now)

    time_wait.enter = enter


def close_with_unread_data_sends_fin(host: Host) -> None:
    """close() with received data unread discards it and closes with a FIN, not a reset
    (RFC 1122 4.2.2.13: SHOULD send RST)."""
    original = host.tcp.calls.close

    def close(sock: TcpSocket, now: Nanoseconds) -> Any:
        sock.receive_buffer.clear()
        return original(sock, now)

    host.tcp.calls.close = close  # type: ignore[method-assign]


def data_after_close_acknowledged(host: Host) -> None:
    """Data arriving after close() is acknowledged and thrown away, not reset (RFC 1122
    4.2.2.13, Linux: SHOULD send RST)."""
    original = arrival.text_arrives

    def text_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        orphan, sock.orphan = sock.orphan, False
        try:
            original(tcp, sock, segment, now)
        finally:
            sock.orphan = orphan
        if orphan:
            sock.receive_buffer.clear()

    arrival.text_arrives = text_arrives


def linger_zero_closes_gracefully(host: Host) -> None:
    """close() with SO_LINGER {on, 0} closes with a FIN instead of aborting with a reset
    (RFC 9293 3.10.5 ABORT)."""
    original = host.tcp.calls.close

    def close(sock: TcpSocket, now: Nanoseconds) -> Any:
        if sock.linger == (1, 0):
            sock.linger = (0, 0)
        return original(sock, now)

    host.tcp.calls.close = close  # type: ignore[method-assign]


def connect_ignores_the_bound_port(host: Host) -> None:
    """connect() takes an ephemeral port even when the socket was bound to one (RFC 9293
    3.9.1.1: the local port of the OPEN)."""
    original = host.tcp.calls.connect

    def connect(sock: TcpSocket, address: IPv4Address, port: int, now: Nanoseconds) -> None:
        if sock.state is State.CLOSED and not sock.connecting and sock.bound:
            sock.local_port = 0
        original(sock, address, port, now)

    host.tcp.calls.connect = connect  # type: ignore[method-assign]


def _tcp_datagrams_with(host: Host, **forced: int) -> None:
    original = host.send_datagram

    def send_datagram(now: Nanoseconds, destination: IPv4Address, payload: bytes,
                      **kwargs: Any) -> None:
        if kwargs.get("protocol") == TCP:
            kwargs.update(forced)
        original(now, destination, payload, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


def ttl_option_ignored(host: Host) -> None:
    """IP_TTL on a TCP socket is accepted and ignored: the default TTL goes out (RFC 1122
    4.2.2.19)."""
    _tcp_datagrams_with(host, ttl=host.settings.default_ttl)


def tos_option_ignored(host: Host) -> None:
    """IP_TOS on a TCP socket is accepted and ignored: TOS 0 goes out (RFC 1122 4.2.4.2)."""
    _tcp_datagrams_with(host, tos=0)


def tos_fixed_at_connect(host: Host) -> None:
    """IP_TOS changed on a connection is ignored: the TOS it opened with stays (RFC 1122
    4.2.4.2: SHOULD follow the application)."""
    original = host.tcp.calls.setsockopt

    def setsockopt(sock: TcpSocket, name: str, value: Any, now: Nanoseconds) -> None:
        if name == "IP_TOS" and sock.state not in (State.CLOSED, State.LISTEN):
            return
        original(sock, name, value, now)

    host.tcp.calls.setsockopt = setsockopt  # type: ignore[method-assign]


# ---- malformed segments: RFC 9293 3.1, 3.2; RFC 1122 4.2.2.5-4.2.2.7 -----------------------


def checksum_not_verified(host: Host) -> None:
    """Received TCP checksums are not verified: a corrupt segment is taken (RFC 9293 3.1
    MUST-2, RFC 1122 4.2.2.7)."""
    _rewrite_received(host, lambda raw, source: _summed(host, raw, source)
                      if len(raw) >= 20 else bytes(raw))


def impossible_data_offset_taken_as_five(host: Host) -> None:
    """A data offset below 5, or past the end of the segment, is read as 5 (RFC 9293 3.1:
    the header is at least 20 octets, and the data offset says where the data begins)."""

    def rewrite(raw: bytearray, source: IPv4Address) -> bytes:
        offset = raw[12] >> 4 if len(raw) >= 20 else 5
        if (offset < 5 or offset * 4 > len(raw)) and _checksum_holds(host, raw, source):
            raw[12] = 0x50 | (raw[12] & 0x0F)
            return _summed(host, raw, source)
        return bytes(raw)

    _rewrite_received(host, rewrite)


def illegal_option_length_in_syn_closes_the_listener(host: Host) -> None:
    """A SYN with an illegal option length brings its listener down, as a crash of the
    service would (RFC 1122 4.2.2.5: MUST handle it without crashing)."""
    original = host.tcp.receive

    def receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        raw = bytearray(packet.payload)
        if _is_syn(raw) and _bad_option_length(raw):
            listening = host.tcp.listener_for(
                (packet.header.dst, int.from_bytes(raw[2:4], "big")))
            if listening is not None:
                listener.close_listener(host.tcp, listening, now)
            host.tcp.record_drop(now, "broken.listener_crashed")
            return
        original(packet, now, broadcast=broadcast)

    host.tcp.receive = receive  # type: ignore[method-assign]


def illegal_option_length_makes_options_data(host: Host) -> None:
    """On a data segment with an illegal option length the options area is taken as data
    and delivered (RFC 1122 4.2.2.5, RFC 9293 3.1)."""

    def rewrite(raw: bytearray, source: IPv4Address) -> bytes:
        if (not _is_syn(raw) and _bad_option_length(raw)
                and _checksum_holds(host, raw, source)):
            raw[12] = 0x50 | (raw[12] & 0x0F)
            return _summed(host, raw, source)
        return bytes(raw)

    _rewrite_received(host, rewrite)


def illegal_option_length_in_syn_makes_options_data(host: Host) -> None:
    """On a SYN the options after the first (an MSS) are taken as data when one of them
    has an illegal length, and the SYN-ACK acknowledges them (RFC 9293 3.1 MUST-7: never
    act on garbage)."""
    original_listen_arrives, original_send_syn = listener.listen_arrives, output.send_syn
    garbage = [0]  # octets of the SYN being answered taken as data

    def rewrite(raw: bytearray, source: IPv4Address) -> bytes:
        if (_is_syn(raw) and _bad_option_length(raw) and raw[20] == 2
                and _checksum_holds(host, raw, source)):
            raw[12] = 0x60 | (raw[12] & 0x0F)  # the header ends after the MSS option
            return _summed(host, raw, source)
        return bytes(raw)

    def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment, local: Endpoint,
                       remote: Endpoint, now: Nanoseconds, *, isn: int | None = None) -> None:
        garbage[0] = len(segment.payload)
        original_listen_arrives(tcp, sock, segment, local, remote, now, isn=isn)
        garbage[0] = 0

    def send_syn(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if garbage[0] and sock.state is State.SYN_RECEIVED:
            sock.rcv_nxt = sock.rcv_adv = (sock.rcv_nxt + garbage[0]) % (1 << 32)
        original_send_syn(tcp, sock, now)

    _rewrite_received(host, rewrite)
    listener.listen_arrives = listen_arrives
    output.send_syn = send_syn


def unknown_option_ends_the_walk(host: Host) -> None:
    """An unknown option ends the reading of the options: the ones after it are ignored
    (RFC 1122 4.2.2.5: MUST ignore an unknown option, skipping it by its length)."""

    def transform(segment: TcpSegment, raw_options: bytes) -> TcpSegment:
        options = segment.options
        for index, option in enumerate(options):
            if isinstance(option, UnknownOption):
                return dataclasses.replace(segment, options=options[:index], checksum=None)
        return segment

    _parsed(transform)


def mss_read_only_as_the_first_option(host: Host) -> None:
    """The MSS option is read only where it usually sits, first in the options: after a NOP
    it is missed (RFC 9293 3.1: an option may begin on any octet boundary)."""

    def transform(segment: TcpSegment, raw_options: bytes) -> TcpSegment:
        if raw_options[:1] == b"\x02":
            return segment
        kept = tuple(option for option in segment.options if not isinstance(option, Mss))
        return dataclasses.replace(segment, options=kept, checksum=None)

    _parsed(transform)


def options_on_data_segments_dropped(host: Host) -> None:
    """A segment without SYN that carries options is dropped (RFC 9293 3.1, RFC 1122
    4.2.2.5: options may appear in any segment)."""

    def rewrite(raw: bytearray, source: IPv4Address) -> bytes | str:
        if len(raw) >= 20 and not _is_syn(raw) and raw[12] >> 4 > 5:
            return "broken.options_on_data"
        return bytes(raw)

    _rewrite_received(host, rewrite)


# ---- the accept queue and SYN-ACK retransmission: RFC 9293 3.10.7, RFC 1122 4.2.3.1 --------


def overflowing_connections_acknowledged_then_lost(host: Host) -> None:
    """A final ACK that finds the accept queue full completes the handshake and has its data
    acknowledged, but the connection is never handed to accept() (RFC 9293 3.10.7.4: what
    was acknowledged must reach the user)."""
    original = listener.admit

    def admit(tcp: TcpContext, child: TcpSocket, now: Nanoseconds) -> bool:
        parent = child.parent
        if parent is not None and parent.listener is not None and (
                parent.listener.accept_queue_full):
            parent.listener.forget(child)
            return True
        return original(tcp, child, now)

    listener.admit = admit


def synack_retransmitted_without_backoff(host: Host) -> None:
    """An unanswered SYN-ACK is retransmitted at a fixed interval, without exponential
    backoff (RFC 1122 4.2.3.1, RFC 6298 5.5)."""
    original = timers.retransmission_timeout

    def retransmission_timeout(tcp: TcpContext, sock: TcpSocket, now: Nanoseconds) -> None:
        if sock.state is not State.SYN_RECEIVED:
            original(tcp, sock, now)
            return
        interval = sock.rto.rto
        original(tcp, sock, now)
        sock.rto.rto = interval
        if sock.retransmit_at is not None:
            sock.retransmit_at = now + interval

    timers.retransmission_timeout = retransmission_timeout
