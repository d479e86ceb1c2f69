"""ARP (RFC 826, RFC 1122 2.3.2): the neighbour cache and address resolution.

The cache maps IPv4 addresses to MAC addresses with a lifetime. Resolving an address
queues the packets that wait for it, sends a broadcast request, retries a limited number
of times, and gives the queued packets back as failed when no reply comes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from stack.settings import Settings
from stack.timing import Nanoseconds, earliest
from stack.wire.arp import ArpOp, ArpPacket
from stack.wire.ethernet import MacAddress

ZERO_MAC = MacAddress(bytes(6))


@dataclass
class _Entry:
    mac: MacAddress
    expires: Nanoseconds


@dataclass
class _Resolution:
    """An address being resolved: the packets waiting for it and the retry schedule."""

    waiting: deque[bytes]
    requests_sent: int
    next_request: Nanoseconds
    dropped: int = 0


@dataclass
class ArpOutcome:
    """What handling a packet or a timer produced."""

    requests: list[ArpPacket] = field(default_factory=list)
    replies: list[ArpPacket] = field(default_factory=list)
    # Packets whose next hop is now known, to send to that MAC.
    resolved: list[tuple[MacAddress, bytes]] = field(default_factory=list)
    # Packets whose next hop never answered (RFC 1122 2.3.2.2: report the failure).
    unresolved: list[bytes] = field(default_factory=list)
    drop_reason: str | None = None


class ArpCache:
    def __init__(self, mac: MacAddress, ip: IPv4Address, settings: Settings) -> None:
        self.mac = mac
        self.ip = ip
        self.settings = settings
        self._entries: dict[IPv4Address, _Entry] = {}
        self._resolving: dict[IPv4Address, _Resolution] = {}

    def lookup(self, ip: IPv4Address, now: Nanoseconds) -> MacAddress | None:
        entry = self._entries.get(ip)
        if entry is None or entry.expires <= now:
            return None
        return entry.mac

    def resolve(self, ip: IPv4Address, packet: bytes, now: Nanoseconds) -> ArpOutcome:
        """Queue ``packet`` (an IPv4 datagram) until ``ip`` is resolved."""
        outcome = ArpOutcome()
        resolution = self._resolving.get(ip)
        if resolution is None:
            resolution = _Resolution(deque(), 1, now + self.settings.arp_retry_interval)
            self._resolving[ip] = resolution
            outcome.requests.append(self._request(ip))
        # RFC 1122 2.3.2.2: SHOULD save at least one packet; Linux keeps the newest
        # unres_qlen and drops the oldest.
        if len(resolution.waiting) >= self.settings.arp_queue_limit:
            resolution.waiting.popleft()
            resolution.dropped += 1
            outcome.drop_reason = "arp.queue_full"
        resolution.waiting.append(packet)
        return outcome

    def receive(self, packet: ArpPacket, now: Nanoseconds) -> ArpOutcome:
        outcome = ArpOutcome()
        if packet.sender_mac.is_multicast or packet.sender_ip.is_multicast:
            outcome.drop_reason = "arp.bad_sender"
            return outcome
        if packet.sender_ip == self.ip:
            # Someone else claims our address: never let it overwrite anything.
            outcome.drop_reason = "arp.address_conflict"
            return outcome
        for_us = packet.target_ip == self.ip
        # RFC 826: update an existing entry from any packet; add one only when the packet
        # is for us. A gratuitous ARP (sender == target) thus refreshes a known neighbour
        # and never creates one (Linux arp_accept = 0).
        known = packet.sender_ip in self._entries or packet.sender_ip in self._resolving
        # Linux (arp_accept = 0) goes further than RFC 826: only a request for us adds an
        # entry; an unsolicited reply does not.
        asked = for_us and packet.op == ArpOp.REQUEST
        if (known or asked) and not packet.sender_ip.is_unspecified:
            self._learn(packet.sender_ip, packet.sender_mac, now, outcome)
        if for_us and packet.op == ArpOp.REQUEST:
            outcome.replies.append(
                ArpPacket(ArpOp.REPLY, self.mac, self.ip, packet.sender_mac, packet.sender_ip)
            )
        elif not for_us and packet.sender_ip not in self._entries:
            outcome.drop_reason = "arp.not_for_us"
        return outcome

    def poll(self, now: Nanoseconds) -> ArpOutcome:
        outcome = ArpOutcome()
        for ip, resolution in list(self._resolving.items()):
            if resolution.next_request > now:
                continue
            if resolution.requests_sent >= self.settings.arp_retries:
                del self._resolving[ip]
                outcome.unresolved.extend(resolution.waiting)
                continue
            resolution.requests_sent += 1
            resolution.next_request = now + self.settings.arp_retry_interval
            outcome.requests.append(self._request(ip))
        for ip, entry in list(self._entries.items()):
            if entry.expires <= now:
                del self._entries[ip]
        return outcome

    def next_timer(self) -> Nanoseconds | None:
        return earliest(
            *(resolution.next_request for resolution in self._resolving.values()),
            *(entry.expires for entry in self._entries.values()),
        )

    def entries(self, now: Nanoseconds) -> dict[str, str]:
        return {
            str(ip): str(entry.mac) for ip, entry in self._entries.items() if entry.expires > now
        }

    def _learn(
        self, ip: IPv4Address, mac: MacAddress, now: Nanoseconds, outcome: ArpOutcome
    ) -> None:
        self._entries[ip] = _Entry(mac, now + self.settings.arp_entry_lifetime)
        resolution = self._resolving.pop(ip, None)
        if resolution is not None:
            outcome.resolved.extend((mac, packet) for packet in resolution.waiting)

    def _request(self, ip: IPv4Address) -> ArpPacket:
        return ArpPacket(ArpOp.REQUEST, self.mac, self.ip, ZERO_MAC, ip)
