"""The reference stack broken on purpose for the cases of what IP passes to and from the
application and of urgent data through the socket API (suites/rfc1122/test_ip_api.py,
suites/rfc9293/test_urgent_api.py), one behaviour at a time.

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of it; the cases that check it must then fail or warn
(tests/test_ip_api_cases_fail_on_broken_ref.py). The cases of IP_OPTIONS and of the TOS
on TCP are n/a on the stack, which lacks those facilities, and have no breaker.
"""

from __future__ import annotations

import dataclasses

from stack.endpoints import Message
from stack.host import Host
from stack.tcp import arrival, output
from stack.tcp.connection import TcpSocket
from stack.tcp.context import TcpContext
from stack.timing import Nanoseconds
from stack.udp import UdpSocket
from stack.wire.tcp import TcpFlags, TcpSegment

URG = TcpFlags.URG


# ---- UDP: options, TOS and destination passed up (RFC 1122 3.2.1.6, 4.1.3.2, 4.1.3.5) ----


def _rewrite_messages(host: Host, rewrite: dict[str, object]) -> None:
    """Every datagram recvmsg hands over has the fields of ``rewrite`` that it carries
    (those its socket asked for) replaced."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Message:
        message = original(sock, size, flags)
        changes = {name: value for name, value in rewrite.items()
                   if getattr(message, name) is not None}
        return dataclasses.replace(message, **changes)  # type: ignore[arg-type]

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


def received_tos_always_zero(host: Host) -> None:
    """IP_RECVTOS reports TOS 0 whatever the datagram came with (RFC 1122 3.2.1.6)."""
    _rewrite_messages(host, {"tos": 0})


def received_options_not_passed_up(host: Host) -> None:
    """IP_RECVOPTS returns no options, even for a datagram that had some (RFC 1122
    4.1.3.2)."""
    _rewrite_messages(host, {"options": None})


def pktinfo_names_the_host_address(host: Host) -> None:
    """IP_PKTINFO gives the host's own address as destination, a broadcast datagram's
    too (RFC 1122 4.1.3.5)."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Message:
        message = original(sock, size, flags)
        if message.pktinfo is None:
            return message
        info = dataclasses.replace(message.pktinfo, addr=host.address)
        return dataclasses.replace(message, pktinfo=info)

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


# ---- TCP urgent data (RFC 9293 3.8.5, RFC 1122 4.2.2.4) ------------------------------------


def oobinline_ignored(host: Host) -> None:
    """SO_OOBINLINE is accepted but the last urgent octet leaves the stream all the same:
    an inline reader loses it (MUST-31)."""
    original = arrival.take_urgent_octet

    def take_urgent_octet(sock: TcpSocket) -> None:
        inline = sock.options["SO_OOBINLINE"]
        sock.options["SO_OOBINLINE"] = 0
        try:
            original(sock)
        finally:
            sock.options["SO_OOBINLINE"] = inline

    arrival.take_urgent_octet = take_urgent_octet


def urgent_mark_never_reported(host: Host) -> None:
    """SIOCATMARK is always 0: the reader cannot learn where urgent data ends (MUST-33)."""
    original = host.tcp.calls.ioctl

    def ioctl(sock: TcpSocket, request: str) -> int:
        return 0 if request == "SIOCATMARK" else original(sock, request)

    host.tcp.calls.ioctl = ioctl  # type: ignore[method-assign]


def urgent_pointer_cut_at_the_segment_end(host: Host) -> None:
    """An urgent pointer beyond the segment's data is taken to end there: urgent data is
    never longer than one segment (MUST-31)."""
    original = arrival.segment_arrives

    def segment_arrives(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                        now: Nanoseconds) -> None:
        if segment.flags & URG and segment.urgent_pointer > len(segment.payload):
            segment = dataclasses.replace(segment, urgent_pointer=len(segment.payload),
                                          checksum=None)
        original(tcp, sock, segment, now)

    arrival.segment_arrives = segment_arrives


def urgent_data_never_polled(host: Host) -> None:
    """poll never reports POLLPRI: the application is not told of urgent data
    (RFC 1122 4.2.2.4)."""
    original = host.tcp.calls.events

    def events(sock: TcpSocket) -> set[str]:
        return original(sock) - {"POLLPRI"}

    host.tcp.calls.events = events  # type: ignore[method-assign]


def urg_on_the_first_urgent_segment_only(host: Host) -> None:
    """Only the first segment of urgent data carries URG and the pointer; the following
    ones go out as normal data (RFC 1122 4.2.2.4)."""
    original = output.send_segment
    flagged: set[int] = set()

    def send_segment(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        if segment.flags & URG and id(sock) in flagged:
            segment = dataclasses.replace(segment, flags=segment.flags & ~URG,
                                          urgent_pointer=0, checksum=None)
        elif segment.flags & URG:
            flagged.add(id(sock))
        original(tcp, sock, segment, now)

    output.send_segment = send_segment


def urgent_pointer_at_the_last_urgent_octet(host: Host) -> None:
    """The urgent pointer names the last urgent octet (RFC 793's reading, which RFC 1122
    4.2.2.4 and RFC 9293 3.8.5 corrected), not the octet after it."""
    original = output.send_segment

    def send_segment(tcp: TcpContext, sock: TcpSocket, segment: TcpSegment,
                     now: Nanoseconds) -> None:
        if segment.flags & URG:
            segment = dataclasses.replace(segment, urgent_pointer=segment.urgent_pointer - 1,
                                          checksum=None)
        original(tcp, sock, segment, now)

    output.send_segment = send_segment
