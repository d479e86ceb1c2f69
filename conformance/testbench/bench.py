"""The tester's side of the wire: send, expect, expect_none, ARP responder, ICMP errors.

Expectations look at frames the DUT sent after a cursor. A matched frame is claimed and
the cursor moves past it, so each expectation sees what happened after the previous
one, as in a packetdrill script. A frame that matched nothing stays in the capture,
commented as such.
"""

import struct
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conformance.errors import HarnessError
from conformance.evidence.record import CaseRecord
from conformance.lab import addressing
from conformance.lab.addressing import Host
from conformance.testbench.observed import key_fields
from conformance.testbench.templates import describe, diff, matches
from conformance.wire.capture import Capture, Wire, WireFrame

ETH_P_ARP = 0x0806
ECHO_REQUEST, ECHO_REPLY = 8, 0
BARRIER_ECHO_ID = 0xBA55
# How long the DUT has to answer a barrier probe: generous, since a fast DUT answers in
# milliseconds and the wait ends as soon as it does.
BARRIER_S = 3.0
# How long the DUT has to send what it must send at once (a SYN-ACK, an ACK, a reply, an
# error): generous, for a slow DUT (an ARP round trip comes first), and free for a fast one.
ANSWER_S = 3.0


class ExpectationFailed(AssertionError):
    """The DUT did not send what the case expected (or sent what it must not)."""


class StepFailed(ExpectationFailed):
    """A step the case relies on failed: its set-up (a handshake, a datagram the DUT must
    send) or its control (a barrier). The DUT broke the requirement that step embodies,
    and the case is judged at that requirement's level, not at its own: a MAY case whose
    handshake fails is a failure, never `info`."""

    def __init__(self, requirement: str, message: str) -> None:
        super().__init__(f"{message} (a step the case relies on: {requirement})")
        self.requirement = requirement


# RFC 1122 3.2.2.6: every host MUST answer an echo request; barriers rely on it.
ECHO_REQUIREMENT = "RFC1122-3.2.2.6a"


@contextmanager
def step(requirement: str, what: str) -> Iterator[None]:
    """Run a set-up step: a check failing inside it fails `requirement` (`what` says
    which step), whatever the case itself checks."""
    try:
        yield
    except StepFailed:
        raise
    except AssertionError as error:
        raise StepFailed(requirement, f"set-up: {what}: {error}") from error


@dataclass(frozen=True)
class Barrier:
    """A probe the DUT must answer, and a template of its answer."""

    probe: Packet
    answer: Packet
    description: str


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

    def __init__(self, capture: Capture, record: CaseRecord, dut: Host = addressing.DUT,
                 barrier_grace_s: float = 0.0):
        self.capture = capture
        # How long after a barrier's answer the DUT may still send what it owes for frames
        # before the probe: 0 for a stack that handles frames in order; the agent's
        # `barrier_grace_ms` for one whose transport runs apart from its ICMP echo.
        self.barrier_grace_s = barrier_grace_s
        self.record = record
        self.dut_host = dut
        self.host = addressing.TESTER
        self.router = addressing.ROUTER
        self.remote = addressing.REMOTE
        self._cursor = 0  # index into capture.frames where the next expectation starts
        self._expectations = 0
        self._dissected: dict[int, Packet] = {}
        self._barriers = 0
        self._last_sent: WireFrame | None = None

    @classmethod
    def on_wire(cls, wire: Wire, record: CaseRecord, dut: Host = addressing.DUT,
                barrier_grace_s: float = 0.0) -> "Testbench":
        """A testbench capturing `wire`, with its ARP responder answering at once."""
        capture = Capture(wire)
        testbench = cls(capture, record, dut, barrier_grace_s)
        capture.on_dut_frame = testbench.answer_arp
        capture.start()
        return testbench

    @property
    def last_sent(self) -> WireFrame:
        """The frame of the tester's latest send. Not `capture.frames[-1]`: the DUT's
        answer may already be behind it when the case looks."""
        if self._last_sent is None:
            raise HarnessError("the case asked for the tester's last frame before any send")
        return self._last_sent

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
        self._last_sent = frame
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
        observed: bool = True,
    ) -> Received:
        """Wait up to `within` seconds for the DUT to send a frame matching `template` (or
        any of several). The search starts after the previous match, or after `since`
        (which leaves the cursor where it is). The frame is recorded as an `expect.N`
        observation unless `observed` is False: for a stream's segments, where the case
        observes what it judges (sizes, totals) and PSH and timing vary from run to run."""
        templates = [template] if isinstance(template, Packet) else list(template)
        label = self._label("expect", templates, why)
        start = self._cursor if since is None else since.number
        deadline = time.monotonic_ns() + int(within * 1e9)
        found: list[int] = []

        def look() -> bool:
            index = self._first_match(templates, start, len(self.capture.frames))
            if index is not None:
                found.append(index)
            return index is not None

        if not self.capture.wait(look, deadline):
            raise ExpectationFailed(self._missed_report(label, templates, within, start))
        return self._claim(found[0], label, move_cursor=since is None, observed=observed)

    def expect_or_none(
        self,
        template: Packet | Sequence[Packet],
        *,
        why: str,
        within: float = 0.0,
        since: WireFrame | None = None,
        barrier: Barrier | None = None,
    ) -> Received | None:
        """For what the DUT may or may not send: the first matching frame, or None when
        nothing matched before the DUT answered a barrier probe. `within` is a window
        waited before the barrier, for an answer that a timer of the DUT's sends."""
        templates = [template] if isinstance(template, Packet) else list(template)
        if within > 0:
            try:
                return self.expect(templates, within=within, why=why, since=since)
            except ExpectationFailed:
                pass
        start = self._cursor if since is None else since.number
        answer = self.pass_barrier(barrier or self.echo_barrier(templates[0]), why)
        index = self.first_match_before_barrier(templates, start, answer)
        if index is None:
            return None
        label = self._label("expect", templates, why)
        return self._claim(index, label, move_cursor=since is None)

    def expect_none(
        self,
        template: Packet,
        *,
        why: str,
        within: float = 0.0,
        barrier: Barrier | None = None,
    ) -> None:
        """Fail if the DUT sends a frame matching `template` before it answers a barrier:
        a probe sent after the stimulus that the DUT must answer (by default an echo
        request from the host the template is addressed to). Every frame up to the
        barrier's answer is judged, so a late answer is caught and a DUT that answers
        nothing fails. `within` is a quiet window waited first, for checks of what a
        timer of the DUT's must not send."""
        label = self._label("expect_none", [template], why)
        start = self._cursor
        deadline = time.monotonic_ns() + int(within * 1e9)

        def offending() -> int | None:
            return self._first_match([template], start, len(self.capture.frames))

        culprit = None
        if within > 0 and self.capture.wait(lambda: offending() is not None, deadline):
            culprit = offending()
        if culprit is None:
            answer = self.pass_barrier(barrier or self.echo_barrier(template), why)
            culprit = self.first_match_before_barrier([template], start, answer)
        number = self._expectations
        self.record.observe(f"expect.{number}", "none" if culprit is None else "sent")
        if culprit is not None:
            frame = self.capture.frames[culprit]
            frame.comments.append(f"dut: NOT expected, {label}")
            raise ExpectationFailed(
                f"{label}: the DUT sent frame {frame.number}:\n  {Ether(frame.data).summary()}"
            )

    # ---- barriers: positive controls that end every negative check -------------------

    def echo_barrier(self, template: Packet | None = None) -> Barrier:
        """An echo request (RFC 1122 3.2.2.6: a host MUST answer it) from the host that
        `template` is addressed to, so that an answer the DUT must first resolve by ARP
        queues ahead of the echo reply; from the tester's host otherwise."""
        source = self.host
        if template is not None and IP in template and "dst" in template[IP].fields:
            source = addressing.owner_of(str(template[IP].dst)) or source
            if addressing.OFF_LINK.overlaps(IPv4Network(f"{template[IP].dst}/32")):
                source = self.remote
        self._barriers += 1
        ident, sequence = BARRIER_ECHO_ID, self._barriers
        probe = (IP(src=source.ip, dst=self.dut_host.ip)
                 / ICMP(type=ECHO_REQUEST, id=ident, seq=sequence) / Raw(b"barrier"))
        answer = (IP(src=self.dut_host.ip, dst=source.ip)
                  / ICMP(type=ECHO_REPLY, id=ident, seq=sequence))
        return Barrier(probe, answer, f"echo request {sequence} from {source.ip}")

    def pass_barrier(self, barrier: Barrier, why: str) -> WireFrame:
        """Send the barrier's probe and wait for the DUT's answer; its frame bounds what
        the negative check judges. No answer is a failure: silence proves nothing."""
        start = len(self.capture.frames)  # before the probe: its answer may come at once
        self.send(barrier.probe, f"barrier: {barrier.description}, the DUT must answer "
                                 f"(ends the check: {why})")
        deadline = time.monotonic_ns() + int(BARRIER_S * 1e9)
        found: list[int] = []

        def look() -> bool:
            index = self._first_match([barrier.answer], start, len(self.capture.frames))
            if index is not None:
                found.append(index)
            return index is not None

        if not self.capture.wait(look, deadline):
            raise StepFailed(
                ECHO_REQUIREMENT,
                f"the DUT did not answer the barrier ({barrier.description}) within "
                f"{BARRIER_S}s, so '{why}' cannot be judged: a DUT that answers nothing "
                "never passes a check that it sends nothing"
            )
        frame = self.capture.frames[found[0]]
        frame.claimed = True
        frame.comments.append(f"dut: barrier answer ({barrier.description})")
        return frame

    def first_match_before_barrier(self, templates: list[Packet], start: int,
                                   answer: WireFrame) -> int | None:
        """The first unclaimed DUT frame from `start` matching a template among the frames
        judged with the barrier's `answer` (barrier_end)."""
        def found() -> bool:
            return self._first_match(templates, start, len(self.capture.frames)) is not None
        return self._first_match(templates, start, self.barrier_end(answer, found))

    def barrier_end(self, answer: WireFrame, found: Callable[[], bool]) -> int:
        """Where the frames a negative check judges end: at the barrier's answer, or, for a
        DUT with a barrier grace, once `found()` holds or the grace after the answer is
        over (the barrier's answer itself is claimed, so never judged)."""
        if self.barrier_grace_s <= 0:
            return answer.number - 1
        deadline = answer.monotonic_ns + int(self.barrier_grace_s * 1e9)
        self.capture.wait(found, deadline)
        return len(self.capture.frames)

    # ---- matching --------------------------------------------------------------------

    def _label(self, kind: str, templates: list[Packet], why: str) -> str:
        self._expectations += 1
        label = f"{kind} #{self._expectations}: " + " or ".join(map(describe, templates))
        return f"{label} ({why})" if why else label

    def _first_match(self, templates: list[Packet], start: int, stop: int) -> int | None:
        """The index of the first unclaimed DUT frame in [start, stop) matching a template."""
        for index in range(start, min(stop, len(self.capture.frames))):
            frame = self.capture.frames[index]
            if frame.sender != "dut" or frame.claimed:
                continue
            packet = self._dissect(frame)
            if any(matches(candidate, packet) for candidate in templates):
                return index
        return None

    def _claim(self, index: int, label: str, *, move_cursor: bool,
               observed: bool = True) -> Received:
        frame = self.capture.frames[index]
        received = Received(frame, self._dissect(frame))
        if move_cursor:
            self._cursor = index + 1
        frame.claimed = True
        frame.comments.append(f"dut: expected, {label}")
        if observed:
            self.record.observe(f"expect.{self._expectations}", key_fields(
                received.packet, self.capture.frames[:frame.number]))
        return received

    def _dissect(self, frame: WireFrame) -> Packet:
        packet = self._dissected.get(frame.number)
        if packet is None:
            packet = self._dissected[frame.number] = Ether(frame.data)
        return packet

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
