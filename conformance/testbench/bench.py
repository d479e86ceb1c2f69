"""The tester's side of the wire: send, expect, expect_none, ARP responder, ICMP errors.

Expectations look at frames the DUT sent after a cursor. A matched frame is claimed and
the cursor moves past it, so each expectation sees what happened after the previous
one, as in a packetdrill script. A frame that matched nothing stays in the capture,
commented as such.
"""

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from conformance.evidence.record import CaseRecord
from conformance.lab import addressing
from conformance.lab.addressing import Host
from conformance.testbench.observed import key_fields
from conformance.testbench.templates import describe, diff, matches
from conformance.testbench.wire import Capture, Wire, WireFrame

ETH_P_ARP = 0x0806
QUIET_WINDOW_S = 0.25


class ExpectationFailed(AssertionError):
    """The DUT did not send what the case expected (or sent what it must not)."""


@dataclass(frozen=True)
class Received:
    """A frame the DUT sent, matched by an expectation."""

    frame: WireFrame
    packet: Packet

    @property
    def time_s(self) -> float:
        return self.frame.time_s

    def __getitem__(self, layer: type[Packet]) -> Any:
        return self.packet[layer]


class Testbench:
    __test__ = False  # not a pytest test class, despite its name

    """The peer on the wire: the tester hosts, the router, and what they see."""

    def __init__(self, capture: Capture, record: CaseRecord, dut: Host = addressing.DUT):
        self.capture = capture
        self.record = record
        self.dut_host = dut
        self.host = addressing.TESTER
        self.router = addressing.ROUTER
        self.remote = addressing.REMOTE
        self._cursor = 0  # index into capture.frames where the next expectation starts
        self._expectations = 0
        self._dissected: dict[int, Packet] = {}

    @classmethod
    def on_wire(cls, wire: Wire, record: CaseRecord, dut: Host = addressing.DUT) -> "Testbench":
        """A testbench capturing `wire`, with its ARP responder answering at once."""
        capture = Capture(wire)
        testbench = cls(capture, record, dut)
        capture.on_dut_frame = testbench.answer_arp
        capture.start()
        return testbench

    @property
    def ip(self) -> str:
        return self.host.ip

    # ---- ARP: the DUT resolves the tester's hosts by ordinary ARP ------------------

    def answer_arp(self, frame: WireFrame) -> None:
        """Capture hook: answer an ARP request for one of the tester's hosts at once."""
        data = frame.data
        if len(data) < 42 or struct.unpack("!H", data[12:14])[0] != ETH_P_ARP:
            return
        operation = struct.unpack("!H", data[20:22])[0]
        sender_mac, sender_ip, target_ip = data[22:28], data[28:32], data[38:42]
        owner = addressing.owner_of(".".join(str(b) for b in target_ip))
        if operation != 1 or owner is None:
            frame.comments.append("dut: ARP request for an address nobody here owns")
            return
        frame.comments.append(f"dut: ARP who-has {owner.ip} ({owner.name})")
        owner_mac = bytes.fromhex(owner.mac.replace(":", ""))
        reply = (
            sender_mac + owner_mac + struct.pack("!H", ETH_P_ARP)
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
            + owner_mac + target_ip + sender_mac + sender_ip
        )
        self.capture.inject(
            reply, f"tester: ARP reply, {owner.ip} ({owner.name}) is-at {owner.mac}"
        )

    # ---- sending ---------------------------------------------------------------------

    def send(self, packet: Packet, why: str, *, link_destination: str | None = None) -> Packet:
        """Send an IP packet (or a whole frame) to the DUT; `why` becomes its comment.

        The frame goes to the DUT's MAC address unless `link_destination` names another
        (a link-layer broadcast or multicast)."""
        if not isinstance(packet, Ether):
            source = packet[IP].src if IP in packet else self.host.ip
            owner = addressing.owner_of(source)
            source_mac = owner.mac if owner is not None else self.router.mac  # off-link
            packet = Ether(src=source_mac, dst=link_destination or self.dut_host.mac) / packet
        frame = self.capture.inject(bytes(packet), f"tester: {why}")
        return Ether(frame.data)

    def icmp_error(
        self,
        offending: Packet,
        *,
        type: int,
        code: int,
        mtu: int | None = None,
        source: Host | None = None,
    ) -> Packet:
        """An ICMP error about `offending` (a packet the DUT sent), quoting its IP header
        and the first 8 bytes after it (RFC 792), from `source` (default: the packet's
        destination if on-link, else the router)."""
        quoted_ip = offending[IP]
        if source is None:
            source_ip = quoted_ip.dst if addressing.owner_of(quoted_ip.dst) else self.router.ip
        else:
            source_ip = source.ip
        quote = bytes(quoted_ip)[: quoted_ip.ihl * 4 + 8]
        icmp = ICMP(type=type, code=code)
        if mtu is not None:
            icmp.nexthopmtu = mtu
        return IP(src=source_ip, dst=quoted_ip.src) / icmp / quote

    # ---- expectations ----------------------------------------------------------------

    def expect(
        self,
        template: Packet | Sequence[Packet],
        *,
        within: float,
        why: str = "",
        since: WireFrame | None = None,
    ) -> Received:
        """Wait up to `within` seconds for the DUT to send a frame matching `template` (or
        any of several). The search starts after the previous match, or after `since`
        (which leaves the cursor where it is)."""
        templates = [template] if isinstance(template, Packet) else list(template)
        self._expectations += 1
        label = f"expect #{self._expectations}: " + " or ".join(map(describe, templates))
        if why:
            label = f"{label} ({why})"
        deadline = time.monotonic_ns() + int(within * 1e9)
        start = self._cursor if since is None else since.number
        found: list[Received] = []

        def look() -> bool:
            for index in range(start, len(self.capture.frames)):
                frame = self.capture.frames[index]
                if frame.sender != "dut" or frame.claimed:
                    continue
                packet = self._dissect(frame)
                if any(matches(candidate, packet) for candidate in templates):
                    found.append(Received(frame, packet))
                    if since is None:
                        self._cursor = index + 1
                    return True
            return False

        if not self.capture.wait(look, deadline):
            raise ExpectationFailed(self._missed_report(label, templates, within, start))
        received = found[0]
        received.frame.claimed = True
        received.frame.comments.append(f"dut: expected, {label}")
        self.record.observe(f"expect.{self._expectations}", key_fields(
            received.packet, self.capture.frames[:received.frame.number]))
        return received

    def _dissect(self, frame: WireFrame) -> Packet:
        packet = self._dissected.get(frame.number)
        if packet is None:
            packet = self._dissected[frame.number] = Ether(frame.data)
        return packet

    def expect_or_none(
        self,
        template: Packet | Sequence[Packet],
        *,
        within: float,
        why: str,
        since: WireFrame | None = None,
    ) -> Received | None:
        """Like `expect`, for what the DUT may or may not send: None after `within`."""
        try:
            return self.expect(template, within=within, why=why, since=since)
        except ExpectationFailed:
            return None

    def expect_none(self, template: Packet, *, within: float = QUIET_WINDOW_S, why: str) -> None:
        """Wait one quiet window and fail if the DUT sends a frame matching `template`."""
        self._expectations += 1
        label = f"expect_none #{self._expectations}: {describe(template)}"
        start = self._cursor
        deadline = time.monotonic_ns() + int(within * 1e9)

        def offending() -> WireFrame | None:
            for frame in self.capture.frames[start:]:
                if frame.sender == "dut" and matches(template, self._dissect(frame)):
                    return frame
            return None

        self.capture.wait(lambda: offending() is not None, deadline)
        culprit = offending()
        self.record.observe(f"expect.{self._expectations}", "none" if culprit is None else "sent")
        if culprit is not None:
            culprit.comments.append(f"dut: NOT expected, {label} ({why})")
            raise ExpectationFailed(
                f"{label}: the DUT sent frame {culprit.number} within {within}s ({why}):\n"
                f"  {Ether(culprit.data).summary()}"
            )

    def _missed_report(
        self, label: str, templates: list[Packet], within: float, start: int
    ) -> str:
        lines = [f"{label}: nothing matched within {within}s"]
        candidates = [frame for frame in self.capture.snapshot(start) if frame.sender == "dut"]
        if not candidates:
            lines.append("  the DUT sent no frame in that time")
        for frame in candidates[-8:]:
            packet = self._dissect(frame)
            lines.append(f"  frame {frame.number}: {packet.summary()}")
            lines.extend(f"      {difference}" for difference in diff(templates[0], packet))
        return "\n".join(lines)

    def observe(self, name: str, value: Any, *, choice: bool = False) -> None:
        self.record.observe(name, value, choice=choice)
