"""A virtual Ethernet link to one reference-stack host, for the stack's unit tests.

The host is the lab's DUT (`conformance.lab.addressing`: 192.0.2.1/24) with the off-link
network reachable via the lab's on-link router. Frames go in and come out as
scapy packets, so scapy's dissection checks the stack's own codecs independently. Time
is a virtual clock in integer nanoseconds that only moves when a test moves it: no
sleeps, no I/O, no privileges.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from conformance.lab import addressing
from stack.host import Host, InterfaceConfig
from stack.settings import Settings
from stack.sockets import SocketApi
from stack.timing import SECOND, Nanoseconds
from stack.wire.ethernet import MacAddress

# The lab's address plan (conformance.lab.addressing), under the names the tests use.
DUT_MAC, DUT_IP = addressing.DUT.mac, addressing.DUT.ip
PEER_MAC, PEER_IP = addressing.TESTER.mac, addressing.TESTER.ip
PEER2_MAC, PEER2_IP = addressing.TESTER2.mac, addressing.TESTER2.ip
ROUTER_MAC, ROUTER_IP = addressing.ROUTER.mac, addressing.ROUTER.ip
REMOTE_IP = addressing.REMOTE.ip  # off link, via ROUTER_IP
SUBNET_BROADCAST = str(addressing.LINK.broadcast_address)
# Beyond the lab's plan: a second on-link router and an address no route leads to.
OTHER_ROUTER_IP = "192.0.2.253"
OTHER_ROUTER_MAC = "02:00:00:00:00:fd"
UNROUTED_IP = "203.0.113.9"
LINK_BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"

# The clock starts far from zero so that no test passes by treating 0 as "unset".
START: Nanoseconds = 1_000 * SECOND


def interface(mtu: int = 1500) -> InterfaceConfig:
    return InterfaceConfig(
        mac=MacAddress.from_string(DUT_MAC),
        address=IPv4Address(DUT_IP),
        network=addressing.LINK,
        mtu=mtu,
        routes=((addressing.OFF_LINK, IPv4Address(ROUTER_IP)),),
    )


class Link:
    """The wire between the tests (playing every other host) and the stack."""

    def __init__(
        self, settings: Settings | None = None, *, mtu: int = 1500, seed: int = 7,
        neighbours: bool = True,
    ) -> None:
        self.now: Nanoseconds = START
        self.rng = random.Random(seed)
        self.host = Host(interface(mtu), settings, self.rng)
        self.api = SocketApi(self.host)
        # Neighbours whose ARP requests this link answers by itself, so that tests about
        # something else need not resolve addresses by hand.
        self.answering: dict[str, str] = {}
        if neighbours:
            for ip, mac in ((PEER_IP, PEER_MAC), (PEER2_IP, PEER2_MAC), (ROUTER_IP, ROUTER_MAC)):
                self.answering[ip] = mac

    # --- time ---------------------------------------------------------------------------

    def advance(self, delta: Nanoseconds) -> None:
        """Move the clock forward by ``delta`` and run the host's timers."""
        self.advance_to(self.now + delta)

    def advance_to(self, when: Nanoseconds) -> None:
        """Move the clock to ``when``, running every timer that falls due on the way at
        its own deadline, as an event loop would."""
        assert when >= self.now, f"the clock cannot go back from {self.now} to {when}"
        while (deadline := self.host.next_timer()) is not None and self.now < deadline <= when:
            self.now = deadline
            self.host.poll(self.now)
        self.now = when
        self.host.poll(self.now)

    # --- frames in ----------------------------------------------------------------------

    def inject(self, packet: Packet, *, src_mac: str = PEER_MAC, dst_mac: str = DUT_MAC) -> None:
        """Put a frame on the wire towards the host; an IP packet gets an Ethernet header."""
        if not packet.haslayer(Ether):
            packet = Ether(src=src_mac, dst=dst_mac) / packet
        self.host.receive(bytes(packet), self.now)

    def inject_raw(self, ip_datagram: bytes, *, src_mac: str = PEER_MAC,
                   dst_mac: str = DUT_MAC) -> None:
        self.inject(Ether(src=src_mac, dst=dst_mac, type=0x0800) / Raw(ip_datagram))

    # --- frames out ---------------------------------------------------------------------

    def sent(self) -> list[Packet]:
        """Every frame the host sent since the last call, dissected by scapy. ARP requests
        for answering neighbours are answered here and left out."""
        frames: list[Packet] = []
        pending = self.host.take_frames()
        while pending:
            for raw in pending:
                frame = Ether(raw)
                if self._answer_if_neighbour(frame):
                    continue
                frames.append(frame)
            pending = self.host.take_frames()
        return frames

    def sent_one(self) -> Packet:
        frames = self.sent()
        assert len(frames) == 1, f"expected one frame, got {[f.summary() for f in frames]}"
        return frames[0]

    def sent_none(self) -> None:
        frames = self.sent()
        assert frames == [], f"expected silence, got {[f.summary() for f in frames]}"

    def answer_arp(self, ip: str, mac: str) -> list[Packet]:
        """Answer the host's pending ARP request for ``ip`` as ``mac`` would; returns the
        frames the host sends next (the datagrams that waited for the answer)."""
        requests = [
            frame for frame in (Ether(raw) for raw in self.host.take_frames())
            if ARP in frame and frame[ARP].op == 1 and frame[ARP].pdst == ip
        ]
        assert len(requests) == 1, f"expected one ARP request for {ip}, got {len(requests)}"
        self._reply_arp(requests[0], mac)
        return self.sent()

    def learn(self, ip: str, mac: str) -> None:
        """Teach the host a neighbour the way a real one would: by asking for the host's
        own address (RFC 826: the target learns the sender). The reply is discarded."""
        self.inject(
            Ether(src=mac, dst=LINK_BROADCAST_MAC)
            / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=DUT_IP)
        )
        self.host.take_frames()

    def _answer_if_neighbour(self, frame: Packet) -> bool:
        if ARP not in frame or frame[ARP].op != 1 or frame[ARP].pdst not in self.answering:
            return False
        self._reply_arp(frame, self.answering[frame[ARP].pdst])
        return True

    def _reply_arp(self, request: Packet, mac: str) -> None:
        self.inject(
            Ether(src=mac, dst=request[Ether].src)
            / ARP(op=2, hwsrc=mac, psrc=request[ARP].pdst, hwdst=request[ARP].hwsrc,
                  pdst=request[ARP].psrc)
        )

    # --- what the host recorded ---------------------------------------------------------

    def drops(self) -> list[str]:
        return self.host.drops.reasons()

    def last_drop(self) -> str:
        reasons = self.drops()
        assert reasons, "nothing was dropped"
        return reasons[-1]


def udp_from_peer(
    payload: bytes = b"data", *, sport: int = 5000, dport: int = 7, src: str = PEER_IP,
    dst: str = DUT_IP, **ip_fields: object,
) -> Packet:
    return IP(src=src, dst=dst, **ip_fields) / UDP(sport=sport, dport=dport) / Raw(payload)


def icmp_error_about(
    sent: Packet, icmp_type: int, code: int, *, src: str = PEER_IP, quoted_bytes: int = 28,
    **icmp_fields: object,
) -> Packet:
    """An ICMP error from ``src`` quoting the first ``quoted_bytes`` of the datagram in
    ``sent`` (a frame the host sent), as a router or the peer would send it."""
    quoted = bytes(sent[IP])[:quoted_bytes]
    return IP(src=src, dst=DUT_IP) / ICMP(type=icmp_type, code=code, **icmp_fields) / Raw(quoted)
