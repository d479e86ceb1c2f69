"""The reference stack as one host on one Ethernet link, sans-I/O.

`Host.receive(frame, now)` takes a frame from the wire, `poll(now)` runs the timers,
`next_timer()` says when `poll` is next needed, and `take_frames()` hands over what the
stack sends. The socket API (`stack.sockets`) drives the transport layers on top.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from stack.arp import ArpCache, ArpOutcome
from stack.drops import DropLog
from stack.errors import SocketError
from stack.icmp import (
    IcmpRateLimiter,
    ReceivedError,
    echo_reply_options,
    error_suppression_reason,
    quote,
    read_error,
)
from stack.ipv4 import Reassembler, bad_source_reason, fragment, is_broadcast
from stack.pmtu import PathMtuCache
from stack.settings import Settings
from stack.tcp.layer import TcpLayer
from stack.timing import Nanoseconds, earliest
from stack.udp import UdpLayer
from stack.wire.arp import ArpPacket
from stack.wire.errors import WireError
from stack.wire.ethernet import BROADCAST, EthernetFrame, EtherType, MacAddress
from stack.wire.icmp import IcmpMessage, IcmpType, TimeExceededCode, UnreachableCode
from stack.wire.ipv4 import NO_FLAGS, IpProtocol, Ipv4Flags, Ipv4Header, Ipv4Packet


@dataclass(frozen=True)
class InterfaceConfig:
    mac: MacAddress
    address: IPv4Address
    network: IPv4Network
    mtu: int = 1500
    # Off-link networks and their on-link gateways; there is no default route unless
    # one is listed (0.0.0.0/0).
    routes: tuple[tuple[IPv4Network, IPv4Address], ...] = field(default_factory=tuple)


class Host:
    def __init__(
        self, config: InterfaceConfig, settings: Settings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or Settings()
        self.rng = rng or random.Random()
        self.address = config.address
        self.link_mtu = config.mtu
        # IP_PKTINFO's interface index: Linux numbers lo 1, so the one link is 2.
        self.interface_index = 2
        self.arp = ArpCache(config.mac, config.address, self.settings)
        self.reassembler = Reassembler(self.settings)
        self.pmtu = PathMtuCache(config.mtu, self.settings)
        self.icmp_limiter = IcmpRateLimiter(self.settings)
        self.drops = DropLog()
        self.udp = UdpLayer(self, self.settings, self.rng)
        self.tcp = TcpLayer(self, self.drops, self.settings, self.rng)
        self.redirects: dict[IPv4Address, IPv4Address] = {}
        self._outbox: list[bytes] = []
        self._identification = self.rng.randrange(1 << 16)

    # --- the wire -----------------------------------------------------------------------

    def take_frames(self) -> list[bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    def receive(self, raw: bytes, now: Nanoseconds) -> None:
        """Handle one frame from the wire; a bad one is dropped with its reason recorded."""
        try:
            frame = EthernetFrame.parse(raw)
        except WireError as error:
            self.drops.record(now, error.reason, error.detail)
            return
        link_broadcast = frame.dst.is_broadcast
        if frame.dst != self.config.mac and not link_broadcast:
            self.drops.record(now, "ethernet.not_for_us", str(frame.dst))
            return
        if frame.ethertype == EtherType.ARP:
            self._receive_arp(frame.payload, now)
        elif frame.ethertype == EtherType.IPV4:
            self._receive_ipv4(frame.payload, now, link_broadcast=link_broadcast)
        else:
            self.drops.record(now, "ethernet.unknown_ethertype", f"{frame.ethertype:#06x}")

    def poll(self, now: Nanoseconds) -> None:
        self._after_arp(self.arp.poll(now), now)
        self.pmtu.poll(now)
        self.tcp.poll(now)
        for expired in self.reassembler.poll(now):
            self.drops.record(now, "ipv4.reassembly_timeout", str(expired.key))
            # RFC 1122 3.2.1.4 / RFC 792: if fragment zero came, send Time Exceeded code 1.
            if expired.first_fragment is not None:
                self.send_icmp_error(
                    expired.first_fragment, now, IcmpType.TIME_EXCEEDED,
                    TimeExceededCode.FRAGMENT_REASSEMBLY, link_broadcast=False,
                )

    def next_timer(self) -> Nanoseconds | None:
        return earliest(
            self.arp.next_timer(), self.pmtu.next_timer(), self.reassembler.next_timer(),
            self.tcp.next_timer(),
        )

    # --- what transport layers use (stack.endpoints.IpService) --------------------------------

    def is_broadcast(self, destination: IPv4Address) -> bool:
        return is_broadcast(destination, self.config.network)

    def next_hop(self, destination: IPv4Address) -> IPv4Address | None:
        if destination in self.config.network or destination == IPv4Address("255.255.255.255"):
            return destination
        if destination in self.redirects:
            return self.redirects[destination]
        matches = [route for route in self.config.routes if destination in route[0]]
        if not matches:
            return None
        return max(matches, key=lambda route: route[0].prefixlen)[1]

    def check_route(self, destination: IPv4Address) -> None:
        if self.next_hop(destination) is None:
            raise SocketError("ENETUNREACH", f"no route to {destination}")

    def path_mtu(self, destination: IPv4Address, now: Nanoseconds) -> int:
        return self.pmtu.get(destination, now)

    def send_datagram(
        self, now: Nanoseconds, destination: IPv4Address, payload: bytes, *,
        ttl: int, tos: int, dont_fragment: bool, fragment_size: int,
        protocol: int = IpProtocol.UDP, options: bytes = b"",
    ) -> None:
        self._identification = (self._identification + 1) & 0xFFFF
        header = Ipv4Header(
            src=self.address, dst=destination, protocol=protocol, ttl=ttl, tos=tos,
            identification=self._identification, options=options,
            flags=Ipv4Flags.DONT_FRAGMENT if dont_fragment else NO_FLAGS,
        )
        packet = Ipv4Packet(header, payload)
        pieces = [packet] if dont_fragment else fragment(packet, min(fragment_size, self.link_mtu))
        for piece in pieces:
            self._output(piece, now)

    def send_icmp_error(
        self, offending: Ipv4Packet, now: Nanoseconds, icmp_type: int, code: int, *,
        link_broadcast: bool, rest: bytes = b"\x00" * 4,
    ) -> str | None:
        """Send an ICMP error about ``offending`` unless RFC 1122 3.2.2 forbids it or the
        rate limit holds it back; returns why it was not sent."""
        reason = error_suppression_reason(
            offending, link_broadcast=link_broadcast, network=self.config.network,
            own=self.address,
        )
        if reason is None and not self.icmp_limiter.allow(icmp_type, offending.header.src, now):
            reason = "icmp.rate_limited"
        if reason is not None:
            return reason
        message = IcmpMessage(icmp_type, code, rest, quote(offending, self.settings))
        self._send_icmp(offending.header.src, message, now)
        return None

    # --- receive paths ------------------------------------------------------------------

    def _receive_arp(self, payload: bytes, now: Nanoseconds) -> None:
        try:
            packet = ArpPacket.parse(payload)
        except WireError as error:
            self.drops.record(now, error.reason, error.detail)
            return
        self._after_arp(self.arp.receive(packet, now), now)

    def _after_arp(self, outcome: ArpOutcome, now: Nanoseconds) -> None:
        if outcome.drop_reason is not None:
            self.drops.record(now, outcome.drop_reason)
        for request in outcome.requests:
            self._emit(BROADCAST, EtherType.ARP, request.emit())
        for reply in outcome.replies:
            self._emit(reply.target_mac, EtherType.ARP, reply.emit())
        for mac, datagram in outcome.resolved:
            self._emit(mac, EtherType.IPV4, datagram)
        for datagram in outcome.unresolved:
            self.drops.record(now, "arp.unresolved")
            self._report_unresolved(datagram, now)

    def _report_unresolved(self, datagram: bytes, now: Nanoseconds) -> None:
        """RFC 1122 2.3.2.2: the next hop did not answer. Like Linux, tell the sending
        socket as if an ICMP Host Unreachable had come from this host."""
        try:
            packet = Ipv4Packet.parse(datagram)
            quoted = quote(packet, self.settings)
            message = IcmpMessage.destination_unreachable(UnreachableCode.HOST, quoted)
            error = read_error(message, self.address, self.address)
        except WireError:
            return
        self._deliver_error(error, now)

    def _receive_ipv4(self, payload: bytes, now: Nanoseconds, *, link_broadcast: bool) -> None:
        try:
            # RFC 1122 3.2.1.1 and 3.2.1.2: bad version or checksum, silently discarded.
            packet = Ipv4Packet.parse(payload)
        except WireError as error:
            self.drops.record(now, error.reason, error.detail)
            return
        header = packet.header
        broadcast = self.is_broadcast(header.dst)
        if header.dst != self.address and not broadcast:
            reason = "ipv4.multicast_not_joined" if header.dst.is_multicast else "ipv4.not_for_us"
            # RFC 1122 3.3.1.1: a host that is not a router silently discards these.
            self.drops.record(now, reason, str(header.dst))
            return
        if link_broadcast and not broadcast:
            # RFC 1122 3.3.6: SHOULD discard a link-layer broadcast to a unicast address.
            self.drops.record(now, "ipv4.unicast_in_link_broadcast")
            return
        source_problem = bad_source_reason(header.src, self.address, self.config.network)
        if source_problem is not None:
            self.drops.record(now, source_problem, str(header.src))  # RFC 1122 3.2.1.3
            return
        try:
            # RFC 1122 3.2.1.8: options are accepted, and those we do not know ignored.
            header.parsed_options()
        except WireError as error:
            self.drops.record(now, error.reason, error.detail)
            # RFC 1122 3.2.2.5: SHOULD send Parameter Problem; it points at the options.
            self.send_icmp_error(
                packet, now, IcmpType.PARAMETER_PROBLEM, 0,
                link_broadcast=link_broadcast, rest=bytes([20, 0, 0, 0]),
            )
            return
        if header.is_fragment:
            outcome = self.reassembler.add(packet, now)  # RFC 1122 3.2.1.4: MUST reassemble
            if outcome.drop_reason is not None:
                self.drops.record(now, outcome.drop_reason, str(header.identification))
            if outcome.packet is None:
                return
            packet = outcome.packet
        if header.protocol == IpProtocol.ICMP:
            self._receive_icmp(packet, now, broadcast=broadcast)
        elif header.protocol == IpProtocol.UDP:
            udp_reason = self.udp.receive(packet, now, broadcast=broadcast)
            if udp_reason == "udp.port_unreachable":
                # RFC 1122 4.1.3.1: a datagram for a port nobody listens on draws
                # Port Unreachable (3.2.2.1), unless 3.2.2 forbids an error here.
                suppressed = self.send_icmp_error(
                    packet, now, IcmpType.DESTINATION_UNREACHABLE, UnreachableCode.PORT,
                    link_broadcast=link_broadcast,
                )
                self.drops.record(now, "udp.no_socket", suppressed or "answered: port unreachable")
            elif udp_reason is not None:
                self.drops.record(now, udp_reason)
        elif header.protocol == IpProtocol.TCP:
            self.tcp.receive(packet, now, broadcast=broadcast or link_broadcast)
        else:
            # RFC 1122 3.2.2.1: a transport protocol we lack draws Protocol Unreachable.
            suppressed = self.send_icmp_error(
                packet, now, IcmpType.DESTINATION_UNREACHABLE, UnreachableCode.PROTOCOL,
                link_broadcast=link_broadcast,
            )
            self.drops.record(now, "ipv4.unknown_protocol", suppressed or str(header.protocol))

    def _receive_icmp(self, packet: Ipv4Packet, now: Nanoseconds, *, broadcast: bool) -> None:
        try:
            message = IcmpMessage.parse(packet.payload)
        except WireError as problem:
            self.drops.record(now, problem.reason, problem.detail)
            return
        source = packet.header.src
        if message.type == IcmpType.ECHO_REQUEST:
            if broadcast and self.settings.icmp_echo_ignore_broadcasts:
                # RFC 1122 3.2.2.6: an echo request to a broadcast address MAY be ignored.
                self.drops.record(now, "icmp.echo_to_broadcast_ignored")
                return
            # RFC 1122 3.2.2.6: MUST answer, returning the same data.
            reply = IcmpMessage.echo_reply(
                message.echo_identifier, message.echo_sequence, message.payload
            )
            options = echo_reply_options(packet.header.options, self.address)
            self._send_icmp(source, reply, now, options=options)
        elif message.type == IcmpType.REDIRECT:
            self._receive_redirect(message, source, now)
        elif message.is_error:
            try:
                error = read_error(message, source, self.address)
            except WireError as problem:
                self.drops.record(now, problem.reason, problem.detail)
                return
            self._deliver_error(error, now)
        else:
            # RFC 1122 3.2.2: an ICMP message of unknown type MUST be silently discarded
            # (and echo replies, timestamps and information messages are not answered).
            self.drops.record(now, "icmp.unhandled_type", str(message.type))

    def _deliver_error(self, error: ReceivedError, now: Nanoseconds) -> None:
        quoted = error.quoted_header
        if error.type == IcmpType.DESTINATION_UNREACHABLE and error.code == 4:
            # RFC 1191 3: lower the path MTU estimate for the quoted destination.
            assert quoted.total_length is not None
            self.pmtu.datagram_too_big(quoted.dst, error.info, quoted.total_length, now)
        reason = None
        if quoted.protocol == IpProtocol.UDP:
            reason = self.udp.icmp_error(error, now)
        elif quoted.protocol == IpProtocol.TCP:
            reason = self.tcp.icmp_error(error, now)
        else:
            reason = "icmp.error_for_unknown_protocol"
        if reason is not None:
            self.drops.record(now, reason)

    def _receive_redirect(
        self, message: IcmpMessage, source: IPv4Address, now: Nanoseconds
    ) -> None:
        try:
            error = read_error(message, source, self.address)
        except WireError as problem:
            self.drops.record(now, problem.reason, problem.detail)
            return
        destination, gateway = error.quoted_header.dst, message.gateway
        # RFC 1122 3.2.2.2: a host MUST update its routes from a Redirect, and SHOULD
        # discard one that does not come from the current first hop or that names a
        # gateway off the link.
        if source != self.next_hop(destination) or gateway not in self.config.network:
            self.drops.record(now, "icmp.bad_redirect", f"from {source} via {gateway}")
            return
        self.redirects[destination] = gateway

    # --- send paths ---------------------------------------------------------------------

    def _send_icmp(
        self, destination: IPv4Address, message: IcmpMessage, now: Nanoseconds,
        options: bytes = b"",
    ) -> None:
        if self.next_hop(destination) is None:
            self.drops.record(now, "icmp.no_route_back", str(destination))
            return
        # Linux sends ICMP without DF (its ICMP socket uses IP_PMTUDISC_DONT).
        self.send_datagram(
            now, destination, message.emit(), ttl=self.settings.default_ttl, tos=0,
            dont_fragment=False, fragment_size=self.link_mtu, protocol=IpProtocol.ICMP,
            options=options,
        )

    def _output(self, packet: Ipv4Packet, now: Nanoseconds) -> None:
        destination = packet.header.dst
        datagram = packet.emit()
        if self.is_broadcast(destination):
            self._emit(BROADCAST, EtherType.IPV4, datagram)
            return
        next_hop = self.next_hop(destination)
        if next_hop is None:
            self.drops.record(now, "ipv4.no_route", str(destination))
            return
        mac = self.arp.lookup(next_hop, now)
        if mac is None:
            self._after_arp(self.arp.resolve(next_hop, datagram, now), now)
        else:
            self._emit(mac, EtherType.IPV4, datagram)

    def _emit(self, destination: MacAddress, ethertype: int, payload: bytes) -> None:
        self._outbox.append(EthernetFrame(destination, self.config.mac, ethertype, payload).emit())
