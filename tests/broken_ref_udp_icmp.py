"""The reference stack broken on purpose for the UDP and ICMP cases, one behaviour at a time
(suites/rfc768/test_udp.py, suites/rfc1122/test_udp_host.py, suites/rfc1122/test_icmp.py).

Each function takes the stack's `Host` before it serves (`--ref-patch FILE:FUNCTION`) and
replaces one piece of it with a version that breaks one requirement, and that one only.
The cases that check it must then fail (tests/test_udp_icmp_cases_fail_on_broken_ref.py).
"""

from __future__ import annotations

import dataclasses
import struct
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from stack.endpoints import Endpoint, Message
from stack.errors import SocketError
from stack.host import Host
from stack.icmp import ReceivedError, quote
from stack.timing import Nanoseconds
from stack.udp import UdpSocket
from stack.wire.checksum import internet_checksum, transport_checksum
from stack.wire.icmp import ERROR_TYPES, IcmpMessage, IcmpType, UnreachableCode
from stack.wire.ipv4 import IpProtocol, Ipv4Option, Ipv4OptionKind, Ipv4Packet, parse_ipv4_options

UDP = IpProtocol.UDP


# ---- helpers ------------------------------------------------------------------------------


def _with_payload(packet: Ipv4Packet, payload: bytes) -> Ipv4Packet:
    header = dataclasses.replace(packet.header, total_length=None, checksum=None)
    return Ipv4Packet(header, payload)


def _rewrite_udp_receive(host: Host, rewrite: Callable[[bytearray], bytes | None]) -> None:
    """Received UDP datagrams pass through ``rewrite`` (the IP payload, as a bytearray)
    before UDP reads them; None drops the datagram as if its checksum were bad."""
    original = host.udp.receive

    def receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> str | None:
        rewritten = rewrite(bytearray(packet.payload))
        if rewritten is None:
            return "udp.bad_checksum"
        return original(_with_payload(packet, rewritten), now, broadcast=broadcast)

    host.udp.receive = receive  # type: ignore[method-assign]


def _rewrite_udp_send(
    host: Host, rewrite: Callable[[IPv4Address, IPv4Address, bytearray], bytes]
) -> None:
    """UDP datagrams the host sends pass through ``rewrite`` (source and destination
    address, the UDP bytes) before IP takes them."""
    original = host.send_datagram

    def send_datagram(now: Nanoseconds, destination: IPv4Address, payload: bytes,
                      **kwargs: Any) -> None:
        if kwargs.get("protocol", UDP) == UDP:
            payload = rewrite(host.address, destination, bytearray(payload))
        original(now, destination, payload, **kwargs)

    host.send_datagram = send_datagram  # type: ignore[method-assign]


def _unsummed(udp: bytearray) -> bytes:
    return bytes(udp[:6]) + b"\0\0" + bytes(udp[8:])


def _send_errors_despite(host: Host, forbidden: Callable[[Ipv4Packet], bool]) -> None:
    """ICMP errors about datagrams for which ``forbidden`` holds are sent all the same; the
    other rules of RFC 1122 3.2.2 (and the rate limit) still apply to the rest."""
    original = host.send_icmp_error

    def send_icmp_error(offending: Ipv4Packet, now: Nanoseconds, icmp_type: int, code: int, *,
                        link_broadcast: bool, rest: bytes = b"\x00" * 4) -> str | None:
        if not forbidden(offending):
            return original(offending, now, icmp_type, code, link_broadcast=link_broadcast,
                            rest=rest)
        message = IcmpMessage(icmp_type, code, rest, quote(offending, host.settings))
        host._send_icmp(offending.header.src, message, now)
        return None

    host.send_icmp_error = send_icmp_error  # type: ignore[method-assign]


def _answer_icmp(host: Host, request_type: int,
                 answer: Callable[[IcmpMessage], IcmpMessage | None]) -> None:
    """ICMP messages of ``request_type`` get ``answer`` (when not None)."""
    original = host._receive_icmp

    def receive_icmp(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        message = IcmpMessage.parse(packet.payload, verify_checksum=False)
        reply = answer(message) if message.type == request_type else None
        if reply is None:
            original(packet, now, broadcast=broadcast)
        else:
            host._send_icmp(packet.header.src, reply, now)

    host._receive_icmp = receive_icmp  # type: ignore[method-assign]


def _rewrite_received_error(host: Host, rewrite: Callable[[bytearray], bytes]) -> None:
    """The quote of a received ICMP error passes through ``rewrite`` before it is read."""
    original = host._receive_icmp

    def receive_icmp(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        try:
            message = IcmpMessage.parse(packet.payload)
        except Exception:
            original(packet, now, broadcast=broadcast)
            return
        if message.is_error:
            changed = IcmpMessage(message.type, message.code, message.rest,
                                  rewrite(bytearray(message.payload)))
            packet = _with_payload(packet, changed.emit())
        original(packet, now, broadcast=broadcast)

    host._receive_icmp = receive_icmp  # type: ignore[method-assign]


# ---- RFC 768: checksum generation --------------------------------------------------------


def checksum_sent_without_pseudo_header(host: Host) -> None:
    """The UDP checksum is computed over the datagram alone, without the pseudo-header
    (RFC 768: the sum covers the pseudo-header; RFC 1122 4.1.3.4)."""

    def rewrite(source: IPv4Address, destination: IPv4Address, udp: bytearray) -> bytes:
        struct.pack_into("!H", udp, 6, internet_checksum(_unsummed(udp)) or 0xFFFF)
        return bytes(udp)

    _rewrite_udp_send(host, rewrite)


def computed_zero_checksum_sent_as_zero(host: Host) -> None:
    """A checksum that computes to zero is sent as zero, not as all ones (RFC 768), so it
    reads as "no checksum"."""

    def rewrite(source: IPv4Address, destination: IPv4Address, udp: bytearray) -> bytes:
        if transport_checksum(source, destination, UDP, _unsummed(udp)) == 0:
            struct.pack_into("!H", udp, 6, 0)
        return bytes(udp)

    _rewrite_udp_send(host, rewrite)


# ---- RFC 768 and RFC 1122 4.1.3.4: checksum verification ----------------------------------


def zero_checksum_treated_as_bad(host: Host) -> None:
    """A datagram with checksum zero (none computed) is verified like any other and
    dropped as bad (RFC 768: zero means the sender generated none)."""

    def rewrite(udp: bytearray) -> bytes | None:
        return None if len(udp) >= 8 and udp[6:8] == b"\0\0" else bytes(udp)

    _rewrite_udp_receive(host, rewrite)


def checksum_not_verified(host: Host) -> None:
    """Received UDP checksums are not verified: a bad one is delivered, or draws a port
    unreachable (RFC 1122 4.1.3.4: MUST be silently discarded)."""

    def rewrite(udp: bytearray) -> bytes:
        if len(udp) >= 8:
            udp[6:8] = b"\0\0"
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


def checksum_verified_without_pseudo_header(host: Host) -> None:
    """Received UDP checksums are verified over the datagram alone, without the
    pseudo-header (RFC 768, RFC 1122 4.1.3.4)."""

    def rewrite(udp: bytearray) -> bytes | None:
        if len(udp) < 8 or udp[6:8] == b"\0\0":
            return bytes(udp)
        length = int.from_bytes(udp[4:6], "big")
        if internet_checksum(bytes(udp[:length])) != 0:
            return None
        udp[6:8] = b"\0\0"  # verified: UDP checks it no further
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


# ---- RFC 768: the length field and the header ---------------------------------------------


def udp_length_beyond_the_payload_accepted(host: Host) -> None:
    """A UDP length larger than the IP payload is cut to what arrived, and the datagram
    delivered (RFC 768: the length counts the header and the data)."""

    def rewrite(udp: bytearray) -> bytes:
        if len(udp) >= 8 and int.from_bytes(udp[4:6], "big") > len(udp):
            udp[4:6] = len(udp).to_bytes(2, "big")
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


def udp_length_below_the_header_accepted(host: Host) -> None:
    """A UDP length below 8 is taken as "the rest of the IP payload" (RFC 768: the
    minimum value of the length is eight)."""

    def rewrite(udp: bytearray) -> bytes:
        if len(udp) >= 8 and int.from_bytes(udp[4:6], "big") < 8:
            udp[4:6] = len(udp).to_bytes(2, "big")
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


def octets_beyond_the_udp_length_delivered(host: Host) -> None:
    """The data runs to the end of the IP payload, past the UDP length (RFC 768)."""

    def rewrite(udp: bytearray) -> bytes:
        if len(udp) >= 8 and 8 <= int.from_bytes(udp[4:6], "big") < len(udp):
            udp[4:6] = len(udp).to_bytes(2, "big")
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


def truncated_header_accepted(host: Host) -> None:
    """Fewer than 8 octets of UDP are read as a header with no data (RFC 768: the header
    is 8 octets)."""

    def rewrite(udp: bytearray) -> bytes:
        if len(udp) >= 4 and len(udp) < 8:
            return bytes(udp[:4]) + (8).to_bytes(2, "big") + b"\0\0"
        return bytes(udp)

    _rewrite_udp_receive(host, rewrite)


# ---- RFC 768: ports -----------------------------------------------------------------------


def demux_ignores_the_destination_port(host: Host) -> None:
    """A datagram goes to the first socket that takes its address, whatever its port
    (RFC 768: the destination port names the receiving process)."""
    original = host.udp._lookup

    def lookup(destination: IPv4Address, port: int, source: Endpoint) -> UdpSocket | None:
        for sock in host.udp.sockets.values():
            if sock.bound and host.udp._accepts(sock, destination, source):
                return sock
        return original(destination, port, source)

    host.udp._lookup = lookup  # type: ignore[method-assign]


def source_port_zero_dropped(host: Host) -> None:
    """A datagram from source port 0 is dropped (RFC 768: zero means no reply port, and
    the datagram is valid)."""

    def rewrite(udp: bytearray) -> bytes | None:
        return None if udp[:2] == b"\0\0" else bytes(udp)

    _rewrite_udp_receive(host, rewrite)


# ---- RFC 1122 4.1 and the socket API ----------------------------------------------------


def _ignore_option(host: Host, ignored: str) -> None:
    """setsockopt(ignored) succeeds and changes nothing."""
    original = host.udp.setsockopt

    def setsockopt(sock: UdpSocket, name: str, value: int | str, now: Nanoseconds) -> None:
        if name != ignored:
            original(sock, name, value, now)

    host.udp.setsockopt = setsockopt  # type: ignore[method-assign]


def ip_tos_option_ignored(host: Host) -> None:
    """IP_TOS is accepted and ignored: datagrams keep TOS 0 (RFC 1122 3.2.1.6, 4.1.4:
    the application MUST be able to set the TOS)."""
    _ignore_option(host, "IP_TOS")


def sends_from_another_port_than_bound(host: Host) -> None:
    """Datagrams leave from the port after the one the socket is bound to (RFC 1122
    4.1.3.5: the application chooses the local port)."""
    original = host.udp._transmit

    def transmit(sock: UdpSocket, destination: Endpoint, payload: bytes,
                 now: Nanoseconds) -> None:
        port = sock.local_port
        sock.local_port = port % 65535 + 1
        try:
            original(sock, destination, payload, now)
        finally:
            sock.local_port = port

    host.udp._transmit = transmit  # type: ignore[method-assign]


def connect_keeps_the_wildcard_address(host: Host) -> None:
    """A wildcard socket stays bound to 0.0.0.0 after connect: getsockname does not tell
    the address chosen (RFC 1122 4.1.3.5)."""
    original = host.udp.connect

    def connect(sock: UdpSocket, address: IPv4Address, port: int) -> None:
        before = sock.local_address if sock.bound else None
        original(sock, address, port)
        if before is None or str(before) == "0.0.0.0":
            sock.local_address = IPv4Address("0.0.0.0")

    host.udp.connect = connect  # type: ignore[method-assign]


def ip_mtu_reports_the_payload_room(host: Host) -> None:
    """IP_MTU reports the room for UDP data (MTU - 28), not the MTU (RFC 1122 3.3.3)."""
    original = host.udp.getsockopt

    def getsockopt(sock: UdpSocket, name: str, now: Nanoseconds) -> int | str | None:
        value = original(sock, name, now)
        return value - 28 if name == "IP_MTU" and isinstance(value, int) else value

    host.udp.getsockopt = getsockopt  # type: ignore[method-assign]


def broadcast_without_so_broadcast(host: Host) -> None:
    """Datagrams to a broadcast address go out without SO_BROADCAST (udp(7): EACCES)."""
    original = host.udp.sendto

    def sendto(sock: UdpSocket, data: bytes, destination: Endpoint | None, flags: set[str],
               now: Nanoseconds) -> int:
        sock.options["SO_BROADCAST"] = 1
        return original(sock, data, destination, flags, now)

    host.udp.sendto = sendto  # type: ignore[method-assign]


def connected_socket_accepts_any_source(host: Host) -> None:
    """A connected socket takes datagrams from any host and port (udp(7))."""

    def accepts(sock: UdpSocket, destination: IPv4Address, source: Endpoint) -> bool:
        return str(sock.local_address) in ("0.0.0.0", str(destination))

    host.udp._accepts = accepts  # type: ignore[method-assign]


def msg_trunc_not_reported(host: Host) -> None:
    """A datagram cut to the buffer comes without MSG_TRUNC (udp(7))."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Message:
        message = original(sock, size, flags)
        return dataclasses.replace(
            message, flags=[flag for flag in message.flags if flag != "MSG_TRUNC"])

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


def msg_peek_consumes(host: Host) -> None:
    """MSG_PEEK takes the datagram off the queue (recv(2): it MUST stay)."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Message:
        if "MSG_ERRQUEUE" not in flags:
            flags = flags - {"MSG_PEEK"}
        return original(sock, size, flags)

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


def fionread_reports_all_queued(host: Host) -> None:
    """FIONREAD reports the bytes of every queued datagram, not the next one's."""
    original = host.udp.ioctl

    def ioctl(sock: UdpSocket, request: str) -> int:
        if request == "FIONREAD":
            return sum(len(queued.payload) for queued in sock.receive_queue)
        return original(sock, request)

    host.udp.ioctl = ioctl  # type: ignore[method-assign]


def empty_receive_returns_nothing(host: Host) -> None:
    """A MSG_DONTWAIT receive on an empty socket returns zero octets instead of failing
    with EAGAIN (recv(2))."""
    original = host.udp.recvmsg

    def recvmsg(sock: UdpSocket, size: int, flags: set[str]) -> Message:
        try:
            return original(sock, size, flags)
        except SocketError as error:
            if error.errno != "EAGAIN" or "MSG_DONTWAIT" not in flags \
                    or "MSG_ERRQUEUE" in flags:
                raise
            return Message(b"", 0, [], None)

    host.udp.recvmsg = recvmsg  # type: ignore[method-assign]


def udp_cork_ignored(host: Host) -> None:
    """UDP_CORK is accepted and ignored: every send leaves at once (udp(7))."""
    _ignore_option(host, "UDP_CORK")


# ---- RFC 1122 3.2.2: echo and queries ----------------------------------------------------


def echo_reply_with_altered_data(host: Host) -> None:
    """Echo replies return the data with its last octet changed (RFC 1122 3.2.2.6: the
    data MUST be returned unchanged)."""
    original = host._send_icmp

    def send_icmp(destination: IPv4Address, message: IcmpMessage, now: Nanoseconds,
                  options: bytes = b"") -> None:
        if message.type == IcmpType.ECHO_REPLY and message.payload:
            data = message.payload[:-1] + bytes([message.payload[-1] ^ 0xFF])
            message = dataclasses.replace(message, payload=data, checksum=None)
        original(destination, message, now, options)

    host._send_icmp = send_icmp  # type: ignore[method-assign]


def record_route_returned_unchanged(host: Host) -> None:
    """The Record Route option of an Echo Request comes back as it came, without this
    host (RFC 1122 3.2.2.6: SHOULD be updated and returned)."""
    original_receive, original_send = host._receive_icmp, host._send_icmp
    request_options = [b""]

    def receive_icmp(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        request_options[0] = packet.header.options
        original_receive(packet, now, broadcast=broadcast)

    def send_icmp(destination: IPv4Address, message: IcmpMessage, now: Nanoseconds,
                  options: bytes = b"") -> None:
        if message.type == IcmpType.ECHO_REPLY:
            routes = [option for option in parse_ipv4_options(request_options[0])
                      if option.kind == Ipv4OptionKind.RECORD_ROUTE]
            options = b"".join(Ipv4Option(option.kind, option.data).encode() for option in routes)
            options += bytes(-len(options) % 4)
        original_send(destination, message, now, options)

    host._receive_icmp = receive_icmp  # type: ignore[method-assign]
    host._send_icmp = send_icmp  # type: ignore[method-assign]


def unknown_icmp_type_draws_parameter_problem(host: Host) -> None:
    """An ICMP message of an unknown type draws a Parameter Problem pointing at its type
    (RFC 1122 3.2.2: MUST be silently discarded)."""
    original = host._receive_icmp
    known = {int(icmp_type) for icmp_type in IcmpType}

    def receive_icmp(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        if packet.payload[:1] and packet.payload[0] not in known:
            host.send_icmp_error(packet, now, IcmpType.PARAMETER_PROBLEM, 0,
                                 link_broadcast=False,
                                 rest=bytes([packet.header.header_length, 0, 0, 0]))
            return
        original(packet, now, broadcast=broadcast)

    host._receive_icmp = receive_icmp  # type: ignore[method-assign]


def answers_information_requests(host: Host) -> None:
    """Information Requests get an Information Reply (RFC 1122 3.2.2.7: SHOULD NOT)."""
    _answer_icmp(host, IcmpType.INFORMATION_REQUEST,
                 lambda request: IcmpMessage(IcmpType.INFORMATION_REPLY, 0, request.rest))


def answers_address_mask_requests(host: Host) -> None:
    """Address Mask Requests get a reply, though this host is no authority for masks
    (RFC 1122 3.2.2.9: MUST NOT)."""
    mask = host.config.network.netmask.packed
    _answer_icmp(host, 17, lambda request: IcmpMessage(18, 0, request.rest, mask))


def timestamp_reply_in_seconds(host: Host) -> None:
    """Timestamp Requests are answered with times in seconds since the Unix epoch, not
    milliseconds since midnight UT, and not flagged non-standard (RFC 1122 3.2.2.8)."""

    def answer(request: IcmpMessage) -> IcmpMessage:
        seconds = int(time.time()) & 0x7FFF_FFFF
        times = request.payload[:4] + struct.pack("!II", seconds, seconds)
        return IcmpMessage(IcmpType.TIMESTAMP_REPLY, 0, request.rest, times)

    _answer_icmp(host, IcmpType.TIMESTAMP, answer)


# ---- RFC 1122 3.2.2: errors the host sends -------------------------------------------------


def closed_port_is_silent(host: Host) -> None:
    """A datagram to a closed port is dropped without Port Unreachable (RFC 1122 4.1.3.1)."""
    original = host.udp.receive

    def receive(packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> str | None:
        reason = original(packet, now, broadcast=broadcast)
        return "udp.no_socket_silently" if reason == "udp.port_unreachable" else reason

    host.udp.receive = receive  # type: ignore[method-assign]


def error_quotes_the_header_only(host: Host) -> None:
    """ICMP errors quote the offending IP header without any of its data (RFC 1122 3.2.2:
    the header and at least the first 8 data octets)."""
    original = host._send_icmp

    def send_icmp(destination: IPv4Address, message: IcmpMessage, now: Nanoseconds,
                  options: bytes = b"") -> None:
        if message.is_error and message.payload:
            header_length = (message.payload[0] & 0x0F) * 4
            message = dataclasses.replace(message, payload=message.payload[:header_length],
                                          checksum=None)
        original(destination, message, now, options)

    host._send_icmp = send_icmp  # type: ignore[method-assign]


def unknown_protocol_is_silent(host: Host) -> None:
    """A datagram for a protocol the host lacks is dropped without Protocol Unreachable
    (RFC 1122 3.2.2.1: SHOULD send it)."""
    original = host.send_icmp_error

    def send_icmp_error(offending: Ipv4Packet, now: Nanoseconds, icmp_type: int, code: int,
                        **kwargs: Any) -> str | None:
        if (icmp_type, code) == (IcmpType.DESTINATION_UNREACHABLE, UnreachableCode.PROTOCOL):
            return "icmp.protocol_unreachable_not_sent"
        return original(offending, now, icmp_type, code, **kwargs)

    host.send_icmp_error = send_icmp_error  # type: ignore[method-assign]


# ---- RFC 1122 3.2.2: errors the host must not send ------------------------------------------


def error_about_an_icmp_error(host: Host) -> None:
    """ICMP errors are sent about ICMP error messages too (RFC 1122 3.2.2: MUST NOT)."""
    _send_errors_despite(host, lambda packet: packet.header.protocol == IpProtocol.ICMP
                         and packet.payload[:1] != b"" and packet.payload[0] in ERROR_TYPES)


def error_about_a_non_initial_fragment(host: Host) -> None:
    """ICMP errors are sent about fragments other than the first (RFC 1122 3.2.2: MUST
    NOT)."""
    _send_errors_despite(host, lambda packet: packet.header.fragment_offset != 0)


def error_about_a_datagram_to_broadcast(host: Host) -> None:
    """ICMP errors are sent about datagrams to an IP broadcast address (RFC 1122 3.2.2:
    MUST NOT)."""
    _send_errors_despite(host, lambda packet: host.is_broadcast(packet.header.dst))


ALL_HOSTS = IPv4Address("224.0.0.1")
ALL_HOSTS_MAC = bytes.fromhex("01005e000001")


def error_about_a_datagram_to_multicast(host: Host) -> None:
    """ICMP errors are sent about datagrams to a multicast address (RFC 1122 3.2.2: MUST
    NOT). The reference stack joins no group, so this host is also made to take the
    all-hosts group 224.0.0.1 (frames to 01:00:5e:00:00:01, as every multicast host does,
    RFC 1112 7.2) and treat it as a broadcast for delivery: without that the datagram
    never reaches UDP and no rule about errors is tested at all."""
    original_receive, original_is_broadcast = host.receive, host.is_broadcast

    def receive(raw: bytes, now: Nanoseconds) -> None:
        if raw[:6] == ALL_HOSTS_MAC:
            raw = host.config.mac.octets + raw[6:]
        original_receive(raw, now)

    def is_broadcast(destination: IPv4Address) -> bool:
        return destination == ALL_HOSTS or original_is_broadcast(destination)

    host.receive = receive  # type: ignore[method-assign]
    host.is_broadcast = is_broadcast  # type: ignore[method-assign]
    _send_errors_despite(host, lambda packet: packet.header.dst.is_multicast)


def link_broadcast_not_passed_up(host: Host) -> None:
    """IP is not told that a frame came as a link-layer broadcast (RFC 1122 3.3.6 says the
    link layer MUST pass it up): a unicast datagram in a broadcast frame is taken, and an
    error is sent about it (RFC 1122 3.2.2: MUST NOT)."""
    original = host._receive_ipv4

    def receive_ipv4(payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        original(payload, now, link_broadcast=False)

    host._receive_ipv4 = receive_ipv4  # type: ignore[method-assign]


# ---- RFC 1122 3.2.2 and 4.1.3.3: errors the host receives ----------------------------------


def _errors_of_type_not_passed_up(host: Host, icmp_type: int) -> None:
    original = host.udp.icmp_error

    def icmp_error(error: ReceivedError, now: Nanoseconds) -> str | None:
        if error.type == icmp_type:
            return "icmp.not_passed_up"
        return original(error, now)

    host.udp.icmp_error = icmp_error  # type: ignore[method-assign]


def time_exceeded_not_passed_up(host: Host) -> None:
    """Time Exceeded messages reach no socket (RFC 1122 3.2.2.4: MUST be passed up)."""
    _errors_of_type_not_passed_up(host, IcmpType.TIME_EXCEEDED)


def parameter_problem_not_passed_up(host: Host) -> None:
    """Parameter Problem messages reach no socket (RFC 1122 3.2.2.5: MUST be passed up)."""
    _errors_of_type_not_passed_up(host, IcmpType.PARAMETER_PROBLEM)


def short_quote_accepted(host: Host) -> None:
    """An error quoting fewer than 8 octets after the IP header is read all the same, the
    missing octets taken as zeros (RFC 1122 4.1.3.3, 3.2.2: the quote holds 8)."""

    def rewrite(quoted: bytearray) -> bytes:
        if quoted[:1] and quoted[0] >> 4 == 4:
            header_length = (quoted[0] & 0x0F) * 4
            if header_length <= len(quoted) < header_length + 8:
                quoted += bytes(header_length + 8 - len(quoted))
        return bytes(quoted)

    _rewrite_received_error(host, rewrite)


def quoted_source_port_not_checked(host: Host) -> None:
    """An error is matched to a socket by the quoted destination alone, whatever the quoted
    source port (RFC 1122 4.1.3.3: passed up to the socket that sent the datagram)."""
    original = host.udp.icmp_error

    def icmp_error(error: ReceivedError, now: Nanoseconds) -> str | None:
        destination = (error.quoted_header.dst, int.from_bytes(error.quoted_data[2:4], "big"))
        for sock in host.udp.sockets.values():
            if sock.remote == destination:
                data = sock.local_port.to_bytes(2, "big") + error.quoted_data[2:]
                error = dataclasses.replace(error, quoted_data=data)
                break
        return original(error, now)

    host.udp.icmp_error = icmp_error  # type: ignore[method-assign]


def quoted_header_length_not_checked(host: Host) -> None:
    """The quoted IP header is read as 20 octets whatever its IHL says, so a quote with
    IHL 4 is used (RFC 1122 4.1.3.3: a malformed quote is of no socket's concern)."""

    def rewrite(quoted: bytearray) -> bytes:
        if quoted[:1] and quoted[0] >> 4 == 4 and quoted[0] & 0x0F < 5:
            quoted[0] = 0x45
        return bytes(quoted)

    _rewrite_received_error(host, rewrite)
