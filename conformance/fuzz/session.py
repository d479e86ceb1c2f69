"""A fuzzing run: a stream of mutated frames against one DUT in its own lab, with
liveness checks between rounds, memory samples, and the first loss of liveness kept as a
reproducer capture.

Each round holds a TCP connection open with the DUT (the fuzzer's frames aim at it),
sends `check_every` frames (an echo barrier every `PACE_EVERY` of them keeps the DUT's
input queue short, so frames are handled rather than dropped by the TAP device), then
checks that the DUT is alive: it answers an echo request (RFC 1122 3.2.2.6), a UDP
exchange on a socket no fuzzed frame is addressed to, and a new TCP connection that
carries data both ways. A round's frames stay in memory only until its check passes.
"""

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from conformance import __version__
from conformance.agent.client import AgentError
from conformance.errors import HarnessError
from conformance.evidence.pcapng import PcapFrame, write_pcapng
from conformance.evidence.record import CaseRecord
from conformance.evidence.writer import frame_comment
from conformance.fuzz.frames import (
    FUZZ_TCP_PORT,
    FUZZ_UDP_PORT,
    LIVE_TCP_PORT,
    LIVE_UDP_PORT,
    Aim,
    FrameSource,
)
from conformance.lab.netns import Lab
from conformance.targets.base import StartedDut, Target, TargetOptions
from conformance.targets.dut import Dut, DutCallBlocked, Errno
from conformance.testbench.bench import ANSWER_S, BARRIER_S, ExpectationFailed, Testbench
from conformance.testbench.tcp import TcpFlow
from conformance.wire.capture import DutFlooded, WireFrame

PACE_EVERY = 50
DEFAULT_CHECK_EVERY = 1000
LIVE_PEER_PORT = 41000  # the tester's UDP port in the liveness exchange
# The tester's ports for the liveness connections and the held ones, used in turn.
LIVE_SPORTS = range(44000, 48000)
HELD_SPORTS = range(48000, 52000)
UNANSWERED_DATAGRAMS = 16  # fuzzed datagrams a liveness read may skip (a mutated port)


@dataclass
class MemorySample:
    frames_sent: int
    rss_kib: int | None  # the DUT process (for linux: the agent; see `kernel`)
    # linux: the DUT namespace's /proc/net/sockstat (sockets in use per protocol and the
    # reassembly queues' memory are the namespace's; tcp_mem is the whole kernel's)
    kernel: dict[str, int] = field(default_factory=dict)


@dataclass
class FuzzSummary:
    target: str
    seed: int | None  # None for a replay
    frames_requested: int
    frames_sent: int = 0
    rounds: int = 0
    checks_passed: int = 0
    dut_frames: int = 0
    refused_by_the_wire: int = 0  # frames the wire would not take (the errno is counted)
    held_connection_failures: int = 0  # rounds whose held connection did not open
    seconds: float = 0.0
    alive: bool = True
    loss: str | None = None  # how the first failed liveness check failed
    lost_after_frame: int | None = None  # the number of the last frame sent before it
    reproducer: str | None = None
    replayed: str | None = None  # the reproducer whose frames were sent again
    memory: list[MemorySample] = field(default_factory=list)
    seeds: dict[str, int] = field(default_factory=dict)  # frames sent per seed kind

    @property
    def frames_per_second(self) -> float:
        return self.frames_sent / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["frames_per_second"] = round(self.frames_per_second, 1)
        document["version"] = __version__
        return document


OnProgress = Callable[[FuzzSummary], None]


class LivenessLost(Exception):
    """A liveness check failed: the DUT stopped answering, or answered wrongly."""


def memory_sample(started: StartedDut, frames_sent: int, kernel_memory: bool) -> MemorySample:
    """The DUT process's resident set (from /proc), and for a kernel DUT the memory its
    network namespace's sockets and reassembly queues hold (/proc/PID/net/sockstat)."""
    pid = started.agent.pid
    rss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    kernel: dict[str, int] = {}
    if kernel_memory:
        try:
            for line in Path(f"/proc/{pid}/net/sockstat").read_text().splitlines():
                protocol, _, values = line.partition(":")
                words = values.split()
                for name, value in zip(words[::2], words[1::2], strict=False):
                    if name in ("mem", "memory", "inuse", "orphan", "tw"):
                        kernel[f"{protocol.lower()}_{name}"] = int(value)
        except OSError:
            pass
    return MemorySample(frames_sent, rss, kernel)


class FuzzSession:
    """One DUT in one lab, fuzzed round by round. Use as a context manager: the lab, the
    DUT and the capture are removed on every exit path."""

    def __init__(self, target: Target, options: TargetOptions, source: FrameSource, *,
                 seed: int | None, frames: int, check_every: int, out: Path) -> None:
        self.target = target
        self.options = options
        self.out = out
        self.check_every = check_every
        self.mutator = source
        self.summary = FuzzSummary(target.name, seed, frames)
        self._seeds: Counter[str] = Counter()
        self._lab: Lab | None = None
        self._started: StartedDut | None = None
        self._tb: Testbench | None = None
        self._ports_used = 0
        self._kernel_memory = target.name == "linux"
        self._sockets: dict[str, int] = {}

    def __enter__(self) -> "FuzzSession":
        self._lab = Lab.create()
        try:
            self._started = self.target.start(self._lab, self.options)
        except BaseException:
            self._lab.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._tb is not None:
                self._tb.capture.stop()
            if self._started is not None:
                self._started.stop()
        finally:
            if self._lab is not None:
                self._lab.remove()

    @property
    def started(self) -> StartedDut:
        if self._started is None:
            raise HarnessError("the fuzz session was not entered")
        return self._started

    def agent_log(self) -> str:
        return self.started.agent.stderr_text

    # ---- the run -------------------------------------------------------------------

    def run(self, progress: OnProgress | None = None) -> FuzzSummary:
        """Rounds until the frames are sent or a liveness check fails (the round's frames
        then become the reproducer)."""
        summary = self.summary
        began = time.monotonic()
        dut, tb = self._round_bench(0)
        self._sockets = sockets = self._open_sockets(dut)
        self._check(dut, tb, sockets)  # the DUT is alive before the first frame
        summary.memory.append(memory_sample(self.started, 0, self._kernel_memory))
        while summary.frames_sent < summary.frames_requested:
            summary.rounds += 1
            dut, tb = self._round_bench(summary.rounds)
            count = min(self.check_every, summary.frames_requested - summary.frames_sent)
            try:
                held = self._hold_connection(dut, tb)
                self._send_frames(tb, count, progress)
                self._check(dut, tb, sockets)
                if held is not None:
                    self._release(dut, *held)
            except LivenessLost as lost:
                summary.alive, summary.loss = False, str(lost)
                summary.lost_after_frame = summary.frames_sent
                summary.reproducer = str(self._write_reproducer(tb, summary.rounds))
                break
            finally:
                summary.dut_frames += sum(f.sender == "dut" for f in tb.capture.frames)
                summary.seconds = time.monotonic() - began
            summary.memory.append(memory_sample(self.started, summary.frames_sent,
                                                self._kernel_memory))
            if progress is not None:
                progress(summary)
        summary.seconds = time.monotonic() - began
        summary.seeds = dict(sorted(self._seeds.items()))
        return summary

    def _round_bench(self, number: int) -> tuple[Dut, Testbench]:
        """A fresh capture and record for a round: what a round saw is dropped once its
        liveness check passed."""
        if self._tb is not None:
            self._tb.capture.stop()
        started = self.started
        record = CaseRecord(f"fuzz round {number}", self.target.name, [], "MUST")
        self._tb = Testbench.on_wire(started.wire, record, dut=started.host,
                                     barrier_grace_s=started.barrier_grace_s)
        return Dut(started.agent, record, started.host), self._tb

    def _open_sockets(self, dut: Dut) -> dict[str, int]:
        """The DUT's sockets: a UDP socket and a listener the frames aim at, and a UDP
        socket and a listener for the liveness checks alone."""
        sockets: dict[str, int] = {}
        for name, kind, port in (("fuzz_udp", "udp", FUZZ_UDP_PORT),
                                 ("live_udp", "udp", LIVE_UDP_PORT),
                                 ("fuzz_tcp", "tcp", FUZZ_TCP_PORT),
                                 ("live_tcp", "tcp", LIVE_TCP_PORT)):
            sock = dut.socket(kind)
            if isinstance(sock, Errno):
                raise HarnessError(f"the DUT could not open a {kind} socket: {sock}")
            if kind == "tcp":
                dut.setsockopt(sock, "SO_REUSEADDR", 1)
            for result in (dut.bind(sock, dut.ip, port),
                           dut.listen(sock, 64) if kind == "tcp" else None):
                if isinstance(result, Errno):
                    raise HarnessError(f"the DUT could not set up its {kind} port {port}: "
                                       f"{result}")
            sockets[name] = int(sock)
        return sockets

    def _next_port(self, ports: range) -> int:
        """The tester's ports in turn, so that no connection reuses a recent one's."""
        self._ports_used += 1
        return ports[self._ports_used % len(ports)]

    def _release(self, dut: Dut, sock: int, flow: TcpFlow) -> None:
        """The round's held connection reset by the tester, then closed by the DUT: no
        connection of a round lingers in the DUT (a close alone would leave it in
        FIN-WAIT-1, retransmitting its FIN to a tester that no longer answers)."""
        flow.send("R", why="the held connection reset at the end of the round")
        dut.close(sock)

    def _hold_connection(self, dut: Dut, tb: Testbench) -> tuple[int, TcpFlow] | None:
        """A connection to the fuzzed listener for the round's frames to aim at (None
        when it does not open: the fuzzed listener's queue may be full of fuzzed SYNs)."""
        accepting = dut.start("accept", sock=self._sockets["fuzz_tcp"])
        flow = TcpFlow(tb, tb.host, sport=self._next_port(HELD_SPORTS), dport=FUZZ_TCP_PORT)
        try:
            flow.connect(within=ANSWER_S)
        except ExpectationFailed:
            self.summary.held_connection_failures += 1
            self.mutator.aim(Aim())
            return None
        dut_isn = flow.dut_isn if flow.dut_isn is not None else 0
        self.mutator.aim(Aim(flow.sport, (flow.isn + flow.snd_nxt) % 2**32,
                             (dut_isn + flow.rcv_nxt) % 2**32))
        accepted = accepting.result(timeout=ANSWER_S)
        return None if isinstance(accepted, Errno) else (int(accepted[0]), flow)

    def _send_frames(self, tb: Testbench, count: int, progress: OnProgress | None) -> None:
        summary = self.summary
        for index in range(count):
            frame = self.mutator.next_frame()
            number = summary.frames_sent + 1
            try:
                tb.capture.inject(frame.data, f"tester: fuzz frame {number}: "
                                              f"{frame.description}")
            except OSError as error:  # a frame the wire refuses (its length, say)
                summary.refused_by_the_wire += 1
                tb.capture.frames[-1].comments.append(f"tester: the wire refused it: {error}")
            summary.frames_sent = number
            self._seeds[frame.description.split(":")[0]] += 1
            if (index + 1) % PACE_EVERY == 0:
                self._pace(tb)
                if progress is not None:
                    progress(summary)

    def _pace(self, tb: Testbench) -> None:
        """An echo barrier: the DUT has handled every frame before it. Unanswered, it
        ends the round early (the liveness check then judges)."""
        try:
            tb.pass_barrier(tb.echo_barrier(), "pacing: the frames so far are handled")
        except (ExpectationFailed, DutFlooded) as error:
            death = self.started.agent.death
            reason = (f"the DUT died: {death}" if death
                      else str(error) if isinstance(error, DutFlooded)
                      else f"no answer to an echo request within {BARRIER_S} s")
            raise LivenessLost(f"after frame {self.summary.frames_sent}: {reason}") from error

    # ---- liveness ----------------------------------------------------------------------

    def _check(self, dut: Dut, tb: Testbench, sockets: dict[str, int]) -> None:
        """Echo, a UDP exchange and a TCP connection with data both ways, each answered
        within its deadline; LivenessLost says which failed and how."""
        step = "the echo request"
        try:
            tb.pass_barrier(tb.echo_barrier(), "liveness: an echo request")
            step = "the UDP exchange"
            self._udp_exchange(dut, tb, sockets["live_udp"])
            step = "the TCP connection"
            self._tcp_exchange(dut, tb, sockets["live_tcp"])
        except (ExpectationFailed, AgentError, DutCallBlocked, HarnessError, AssertionError,
                OSError) as error:
            death = self.started.agent.death
            reason = f"the DUT died: {death}" if death else f"{type(error).__name__}: {error}"
            raise LivenessLost(f"the liveness check after frame {self.summary.frames_sent} "
                               f"failed at {step}: {reason}") from error
        self.summary.checks_passed += 1

    def _udp_exchange(self, dut: Dut, tb: Testbench, sock: int) -> None:
        nonce = os.urandom(8).hex().encode()
        reading = dut.start("recvfrom", sock=sock, size=2048, flags=[])
        tb.send(IP(src=tb.ip, dst=dut.ip) / UDP(sport=LIVE_PEER_PORT, dport=LIVE_UDP_PORT)
                / Raw(b"live " + nonce), "liveness: a datagram to the DUT's check socket")
        for _ in range(UNANSWERED_DATAGRAMS):
            got = reading.result(timeout=ANSWER_S)
            assert not isinstance(got, Errno), f"recvfrom on the check socket: {got}"
            data, peer = got
            if data == b"live " + nonce and tuple(peer) == (tb.ip, LIVE_PEER_PORT):
                break
            reading = dut.start("recvfrom", sock=sock, size=2048, flags=[])
        else:
            raise AssertionError("the check datagram never reached the application")
        sent = dut.sendto(sock, b"alive " + nonce, tb.ip, LIVE_PEER_PORT)
        assert sent == len(b"alive " + nonce), f"sendto on the check socket: {sent}"
        tb.expect(IP(src=dut.ip, dst=tb.ip) / UDP(sport=LIVE_UDP_PORT, dport=LIVE_PEER_PORT)
                  / Raw(b"alive " + nonce), within=ANSWER_S, why="the DUT's answer",
                  observed=False)

    def _tcp_exchange(self, dut: Dut, tb: Testbench, listener: int) -> None:
        accepting = dut.start("accept", sock=listener)
        flow = TcpFlow(tb, tb.host, sport=self._next_port(LIVE_SPORTS), dport=LIVE_TCP_PORT)
        flow.connect(within=ANSWER_S)
        accepted = accepting.result(timeout=ANSWER_S)
        assert not isinstance(accepted, Errno), f"accept on the check listener: {accepted}"
        sock = int(accepted[0])
        try:
            flow.send("PA", b"ping", why="liveness: data to the DUT")
            flow.expect("A", ack=flow.snd_nxt, within=ANSWER_S, why="the ACK of it",
                        observed=False)
            got = dut.recv(sock, 4)
            assert got == b"ping", f"recv on the check connection: {got!r}"
            assert dut.send(sock, b"pong") == 4, "send on the check connection"
            flow.expect(within=ANSWER_S, why="the DUT's data", observed=False)
            flow.send("R", why="liveness: the check connection reset")
        finally:
            dut.close(sock)

    def _origin(self) -> str:
        if self.summary.replayed is not None:
            return f"--replay {self.summary.replayed}"
        return f"--seed {self.summary.seed}"

    def _write_reproducer(self, tb: Testbench, round_number: int) -> Path:
        """The round's frames (those since the last good check), commented, as pcapng."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "reproducer.pcapng"
        frames: list[WireFrame] = tb.capture.snapshot()
        write_pcapng(
            path, [PcapFrame(f.timestamp_ns, f.data, frame_comment(f)) for f in frames],
            section_comment=(f"conformance fuzz --target {self.target.name} "
                             f"{self._origin()}: round {round_number}, the frames since the "
                             f"last good liveness check; {self.summary.loss}"),
            interface_name="lab", application=f"conformance {__version__}")
        return path
