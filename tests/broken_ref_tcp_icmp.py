"""The reference stack broken on purpose for the TCP cases about ICMP errors, path MTU
discovery and address validation (suites/rfc9293/test_tcp_icmp_pmtu.py), one behaviour at
a time; the data, window and timing cases have theirs in tests/broken_ref_tcp_data.py.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of it with what a buggy stack would do. The cases that check the
requirement must then fail (tests/test_tcp_data_cases_fail_on_broken_ref.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from stack.endpoints import Endpoint
from stack.host import Host
from stack.icmp import ReceivedError
from stack.tcp import arrival, listener, output, seq
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.tcp.layer import error_is_hard
from stack.tcp.state import Event, State
from stack.timing import Nanoseconds
from stack.wire.icmp import IcmpType
from stack.wire.ipv4 import IpProtocol, Ipv4Packet
from stack.wire.tcp import TcpFlags, TcpSegment

TCP = IpProtocol.TCP


# ---- helpers ------------------------------------------------------------------------------


def _rewrite_tcp_datagrams(host: Host, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """The IP parameters (ttl, tos, dont_fragment) of every TCP datagram the host sends
    pass through ``rewrite``."""
    original = host.send_datagram

    def send_datagram(now: Nanoseconds, destination: IPv4Address, payload: bytes,
                      **kwargs: Any) -> None:
        if kwargs.get("protocol") == TCP:
            rewrite(kwargs)
        original(now, destination, payload, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


def _connection_of(tcp: TcpContext, error: ReceivedError) -> TcpSocket | None:
    data = error.quoted_data
    local = (error.quoted_header.src, int.from_bytes(data[0:2], "big"))
    remote = (error.quoted_header.dst, int.from_bytes(data[2:4], "big"))
    return tcp.connections.get((local, remote))


def _intercept_icmp(host: Host,
                    instead: Callable[[TcpSocket, ReceivedError, Nanoseconds], bool]) -> None:
    """ICMP errors about a TCP connection go to ``instead`` first; when it returns True
    the error has been dealt with, else the stack handles it as usual."""
    tcp = host.tcp
    original = tcp.icmp_error

    def icmp_error(error: ReceivedError, now: Nanoseconds) -> str | None:
        sock = _connection_of(tcp, error)
        if sock is not None and instead(sock, error, now):
            return None
        return original(error, now)

    tcp.icmp_error = icmp_error  # type: ignore[method-assign]


# ---- ICMP errors and path MTU (RFC 9293 3.9.2.2, RFC 1122 4.2.3.9, RFC 1191) ---------------


def hard_errors_ignored_while_connecting(host: Host) -> None:
    """Protocol and port unreachable for a SYN are ignored: connect() keeps trying (RFC
    1122 4.2.3.9: MUST act on ICMP errors; hard ones SHOULD abort)."""

    def instead(sock: TcpSocket, error: ReceivedError, now: Nanoseconds) -> bool:
        return sock.state is State.SYN_SENT and error_is_hard(error)

    _intercept_icmp(host, instead)


def icmp_error_matched_without_ports(host: Host) -> None:
    """An ICMP error is given to the first connection to the quoted address, whatever
    the quoted ports (RFC 1122 4.2.3.9: passed to the connection it concerns)."""
    tcp = host.tcp
    original = tcp.icmp_error

    def icmp_error(error: ReceivedError, now: Nanoseconds) -> str | None:
        if _connection_of(tcp, error) is None:
            for local, remote in tcp.connections:
                if remote[0] == error.quoted_header.dst:
                    ports = local[1].to_bytes(2, "big") + remote[1].to_bytes(2, "big")
                    error = dataclasses.replace(
                        error, quoted_data=ports + error.quoted_data[4:])
                    break
        return original(error, now)

    tcp.icmp_error = icmp_error  # type: ignore[method-assign]


def _is_soft(error: ReceivedError) -> bool:
    return not error_is_hard(error) and error.type in (
        IcmpType.DESTINATION_UNREACHABLE, IcmpType.TIME_EXCEEDED, IcmpType.PARAMETER_PROBLEM
    ) and not (error.type == IcmpType.DESTINATION_UNREACHABLE and error.code == 4)


def soft_errors_abort_connections(host: Host) -> None:
    """Soft ICMP errors (net or host unreachable, source route failed, time exceeded,
    parameter problem) abort an established connection (RFC 1122 4.2.3.9: MUST NOT)."""

    def instead(sock: TcpSocket, error: ReceivedError, now: Nanoseconds) -> bool:
        if sock.state is State.ESTABLISHED and _is_soft(error):
            host.tcp.terminate(sock, Event.ABORT, now, "EHOSTUNREACH")
            return True
        return False

    _intercept_icmp(host, instead)


def soft_errors_not_reported(host: Host) -> None:
    """Soft ICMP errors on an established connection are dropped without a word to the
    application (RFC 1122 4.2.3.9: SHOULD make them available; RFC 9293 MUST-20 reports
    errors)."""

    def instead(sock: TcpSocket, error: ReceivedError, now: Nanoseconds) -> bool:
        return sock.state is State.ESTABLISHED and _is_soft(error)

    _intercept_icmp(host, instead)


def source_quench_reported(host: Host) -> None:
    """Source Quench is taken as a soft error and reported to the application (RFC 9293
    3.9.2.2: MUST silently discard it)."""

    def instead(sock: TcpSocket, error: ReceivedError, now: Nanoseconds) -> bool:
        if error.type != IcmpType.SOURCE_QUENCH:
            return False
        if sock.option("IP_RECVERR"):
            sock.error = "EHOSTUNREACH"
        else:
            sock.soft_error = "EHOSTUNREACH"
        return True

    _intercept_icmp(host, instead)


def tcp_ignores_datagram_too_big(host: Host) -> None:
    """TCP keeps the segment size it opened with when a Datagram Too Big comes: the path
    MTU cache learns the new MTU, the connection never reads it again (RFC 1191 3, RFC
    9293 MUST-16)."""
    tcp = host.tcp
    original = tcp.update_mss
    real_path_mtu = host.path_mtu

    def update_mss(sock: TcpSocket, now: Nanoseconds) -> None:
        if not sock.path_mtu:
            original(sock, now)
            return
        opened_with = sock.path_mtu
        host.path_mtu = lambda destination, now: opened_with  # type: ignore[method-assign]
        try:
            original(sock, now)
        finally:
            host.path_mtu = real_path_mtu  # type: ignore[method-assign]

    tcp.update_mss = update_mss  # type: ignore[method-assign]


def tcp_segments_without_df(host: Host) -> None:
    """TCP segments go out without DF: no path MTU discovery for TCP (RFC 1191 2)."""

    def rewrite(datagram: dict[str, Any]) -> None:
        datagram["dont_fragment"] = False

    _rewrite_tcp_datagrams(host, rewrite)


# ---- address validation (RFC 9293 3.9.2.3, RFC 1122 4.2.3.10) -----------------------------
#
# The lab gives the DUT no default route, so a reply to a multicast, loopback or zero
# address has nowhere to go and a stack that accepted such a SYN would look silent. The
# broken stacks below also have a default route via the on-link router, as most hosts do:
# whatever they wrongly accept, they answer on the wire.


def _with_default_route(host: Host) -> None:
    original = host.next_hop
    router = host.config.routes[0][1]

    def next_hop(destination: IPv4Address) -> IPv4Address | None:
        return original(destination) or router

    host.next_hop = next_hop  # type: ignore[method-assign]


class _UnicastLooking(IPv4Address):
    """An address that does not say it is multicast (for a stack that never asks)."""

    @property
    def is_multicast(self) -> bool:
        return False


def connect_to_broadcast_or_multicast_allowed(host: Host) -> None:
    """connect() does not look at the destination: it opens to a broadcast or multicast
    address like any other (RFC 1122 4.2.3.10: MUST refuse)."""
    _with_default_route(host)
    calls = host.tcp.calls
    original = calls.connect

    def connect(sock: TcpSocket, address: IPv4Address, port: int, now: Nanoseconds) -> None:
        real_is_broadcast = host.is_broadcast

        def unchecked_once(destination: IPv4Address) -> bool:
            host.is_broadcast = real_is_broadcast  # type: ignore[method-assign]
            return False

        host.is_broadcast = unchecked_once  # type: ignore[method-assign]
        try:
            original(sock, _UnicastLooking(int(address)) if address.is_multicast else address,
                     port, now)
        finally:
            host.is_broadcast = real_is_broadcast  # type: ignore[method-assign]

    calls.connect = connect  # type: ignore[method-assign]


ALL_HOSTS = IPv4Address("224.0.0.1")
ALL_HOSTS_MAC = bytes.fromhex("01005e000001")


def _broadcast_syns_reach_tcp(host: Host) -> None:
    """TCP does not look at the destination address: segments to a broadcast or multicast
    address reach it as if unicast. The host is also made a member of the all-hosts group
    224.0.0.1 (RFC 1112 7.2), as every multicast host is: without that the SYN never
    reaches TCP."""
    original_receive, original_is_broadcast = host.receive, host.is_broadcast

    def receive(raw: bytes, now: Nanoseconds) -> None:
        if raw[:6] == ALL_HOSTS_MAC:
            raw = host.config.mac.octets + raw[6:]
        original_receive(raw, now)

    def is_broadcast(destination: IPv4Address) -> bool:
        return destination == ALL_HOSTS or original_is_broadcast(destination)

    host.receive = receive  # type: ignore[method-assign]
    host.is_broadcast = is_broadcast  # type: ignore[method-assign]
    tcp = host.tcp
    original = tcp.receive

    def tcp_receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        destination = packet.header.dst
        if destination.is_multicast:
            header = dataclasses.replace(packet.header, dst=_UnicastLooking(int(destination)))
            packet = Ipv4Packet(header, packet.payload)
        original(packet, now, broadcast=False)

    tcp.receive = tcp_receive  # type: ignore[method-assign]


def _syn_opens_at_once_and_silently(
        host: Host, applies: Callable[[IPv4Address, IPv4Address], bool]) -> None:
    """A SYN to a listener for which ``applies(local address, remote address)`` opens a
    connection at once, with nothing sent: the SYN-ACK is never emitted and the child goes
    to the accept queue as if the handshake's ACK had come (a stack that skips the
    handshake for such peers)."""
    original = listener.listen_arrives

    def listen_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                       local: Endpoint, remote: Endpoint, now: Nanoseconds, *,
                       isn: int | None = None) -> None:
        if not (TcpFlags.SYN in segment.flags and applies(local[0], remote[0])):
            original(tcp, sock, segment, local, remote, now, isn=isn)
            return
        emit, output.emit = output.emit, lambda *args, **kwargs: None
        try:
            original(tcp, sock, segment, local, remote, now, isn=isn)
        finally:
            output.emit = emit
        children = [child for child in sock.listener.syn_queue if child.peer == remote
                    ] if sock.listener is not None else []
        for child in children:
            ack = dataclasses.replace(segment, flags=TcpFlags.ACK, seq=child.rcv_nxt,
                                      ack=seq.add(child.iss, 1), payload=b"", checksum=None)
            arrival.segment_arrives(tcp, child, ack, now)

    listener.listen_arrives = listen_arrives


def syn_to_broadcast_or_multicast_accepted(host: Host) -> None:
    """A SYN to a broadcast or multicast address is answered with a SYN-ACK (RFC 1122
    4.2.3.10: MUST silently discard)."""
    _broadcast_syns_reach_tcp(host)


def syn_to_broadcast_or_multicast_opens_silently(host: Host) -> None:
    """A SYN to a broadcast or multicast address opens a connection without a word on the
    wire (RFC 1122 4.2.3.10: MUST silently discard): accept() hands it over."""
    _broadcast_syns_reach_tcp(host)

    def applies(local: IPv4Address, remote: IPv4Address) -> bool:
        return local != host.address

    _syn_opens_at_once_and_silently(host, applies)


def syn_from_invalid_source_accepted(host: Host) -> None:
    """A SYN from a broadcast, multicast, loopback or zero source address is answered like
    any other (RFC 1122 4.2.3.10: MUST ignore it; the IP layer's RFC 1122 3.2.1.3 filter
    is what the reference stack relies on, so it is off for TCP here)."""
    _with_default_route(host)
    _bad_source_filter_off_for_tcp(host)

def _bad_source_filter_off_for_tcp(host: Host) -> None:
    import stack.host as host_module

    original = host._receive_ipv4
    real_filter = vars(host_module)["bad_source_reason"]

    def receive_ipv4(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        if len(payload) > 9 and payload[9] == TCP:
            host_module.bad_source_reason = lambda *args: None  # type: ignore[attr-defined]
        try:
            original(payload, now, link_broadcast=link_broadcast)
        finally:
            host_module.bad_source_reason = real_filter  # type: ignore[attr-defined]

    host._receive_ipv4 = receive_ipv4  # type: ignore[method-assign]


def syn_from_invalid_source_opens_silently(host: Host) -> None:
    """A SYN from a broadcast, multicast, loopback or zero source opens a connection (RFC
    1122 4.2.3.10: MUST ignore it) that accept() hands over; with no default route, the
    stack has nowhere to send its SYN-ACK, so nothing shows on the wire."""
    _bad_source_filter_off_for_tcp(host)

    def applies(local: IPv4Address, remote: IPv4Address) -> bool:
        return (remote.is_multicast or remote.is_loopback or remote.is_unspecified
                or remote == IPv4Address("255.255.255.255"))

    _syn_opens_at_once_and_silently(host, applies)
