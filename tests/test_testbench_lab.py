"""The testbench on a real lab with the Linux kernel: ARP, expectations, and cleanup."""

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyroute2 import netns
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from conformance.evidence.record import CaseRecord
from conformance.lab.netns import Lab, list_labs
from conformance.targets.base import TargetOptions
from conformance.targets.dut import Dut
from conformance.targets.linux import LinuxTarget
from conformance.testbench.bench import ExpectationFailed, StepFailed, Testbench
from conformance.wire.capture import Capture, WireFrame
from tests.suite_runner import privileged

pytestmark = privileged


@dataclass
class Bench:
    lab: Lab
    dut: Dut
    tb: Testbench
    capture: Capture
    agent_pid: int


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    """A Linux DUT in a lab, with the sysctls of an indirect parameter, if any."""
    record = CaseRecord(case_id="t", target="linux", requirements=[], level="MUST")
    lab = Lab.create()
    started = LinuxTarget().start(lab, TargetOptions(getattr(request, "param", {})))
    tb = Testbench.on_wire(started.wire, record)
    capture = tb.capture
    try:
        yield Bench(lab, Dut(started.agent, record, started.host), tb, capture,
                    started.agent.pid)
    finally:
        capture.stop()
        started.stop()
        lab.remove()


def test_the_dut_resolves_the_tester_by_ordinary_arp(bench: Bench) -> None:
    sock = bench.dut.socket("udp")
    bench.dut.sendto(sock, b"hello", bench.tb.ip, 9)
    datagram = bench.tb.expect(IP(dst=bench.tb.ip) / UDP(dport=9), within=1.0)
    frames = bench.capture.snapshot()
    assert frames[0].sender == "dut" and "ARP who-has 192.0.2.2" in frames[0].comments[0]
    assert frames[1].sender == "tester" and "ARP reply" in frames[1].comments[0]
    assert datagram.frame.number == 3
    assert datagram.packet.dst == "02:00:00:00:00:02"


def test_a_missed_expectation_shows_what_came_field_by_field(bench: Bench) -> None:
    sock = bench.dut.socket("udp")
    bench.dut.sendto(sock, b"hello", bench.tb.ip, 9)
    with pytest.raises(ExpectationFailed) as failure:
        bench.tb.expect(IP(dst=bench.tb.ip) / UDP(dport=7), within=0.5, why="wrong port")
    report = str(failure.value)
    assert "(wrong port): nothing matched within 0.5s" in report
    assert "UDP.dport: want 7, got 9" in report


def test_expect_none_fails_when_the_dut_sends_it(bench: Bench) -> None:
    sock = bench.dut.socket("udp")
    bench.dut.sendto(sock, b"hello", bench.tb.ip, 9)
    with pytest.raises(ExpectationFailed, match="the DUT sent frame"):
        bench.tb.expect_none(UDP(dport=9), why="nothing may be sent")
    bench.tb.expect_none(UDP(dport=7), why="a port the DUT never uses")
    last = [frame for frame in bench.capture.frames if frame.sender == "dut"][-1]
    assert last.comments[-1].startswith("dut: barrier answer"), last.comments


def test_expect_none_judges_every_frame_up_to_the_barrier_answer(bench: Bench) -> None:
    # The frame comes before the barrier's echo reply, and after a zero-length window.
    sock = bench.dut.socket("udp")
    bench.dut.sendto(sock, b"late", bench.tb.ip, 9)
    with pytest.raises(ExpectationFailed, match="the DUT sent frame"):
        bench.tb.expect_none(UDP(dport=9), within=0.0, why="nothing may be sent")


def send_after_the_echo_reply(bench: Bench) -> None:
    """Have the DUT send a datagram to port 9 as soon as its first echo reply is seen: a
    frame that follows the barrier's answer, as an answer handled apart from ICMP can."""
    sock = bench.dut.socket("udp")
    answer_arp = bench.capture.on_dut_frame
    started = []

    def hook(frame: WireFrame) -> None:
        if answer_arp is not None:
            answer_arp(frame)
        packet = Ether(frame.data)
        if ICMP in packet and packet[ICMP].type == 0 and not started:
            started.append(bench.dut.agent.start("sendto", {
                "sock": sock, "data": base64.b64encode(b"late").decode(),
                "addr": bench.tb.ip, "port": 9, "flags": []}))

    bench.capture.on_dut_frame = hook


def test_a_barrier_grace_judges_what_follows_the_answer(bench: Bench) -> None:
    send_after_the_echo_reply(bench)
    bench.tb.barrier_grace_s = 1.0
    with pytest.raises(ExpectationFailed, match="the DUT sent frame"):
        bench.tb.expect_none(UDP(dport=9), why="nothing may be sent")


def test_without_a_grace_what_follows_the_answer_is_not_judged(bench: Bench) -> None:
    send_after_the_echo_reply(bench)
    bench.tb.expect_none(UDP(dport=9), why="nothing may be sent before the answer")
    # The datagram did come, after the answer: the check above did not look at it.
    bench.tb.expect(IP(dst=bench.tb.ip) / UDP(dport=9), within=1.0, why="the late datagram")


@pytest.mark.parametrize("bench", [{"net.ipv4.icmp_echo_ignore_all": "1"}], indirect=True)
def test_a_dut_that_answers_no_barrier_fails_the_negative_check(bench: Bench) -> None:
    with pytest.raises(StepFailed, match="did not answer the barrier"):
        bench.tb.expect_none(UDP(dport=9), why="nothing may be sent")
    with pytest.raises(StepFailed, match="did not answer the barrier"):
        bench.tb.expect_or_none(UDP(dport=9), why="may be sent")


def test_removing_a_lab_leaves_no_namespace_device_or_agent() -> None:
    lab = Lab.create()
    started = LinuxTarget().start(lab, TargetOptions())
    pid = started.agent.pid
    started.stop()
    lab.remove()
    assert lab.name not in netns.listnetns()
    assert not Path(f"/proc/{pid}").exists(), "the agent process is still there"
    assert all(not name.startswith(f"cf-{os.getpid()}-") for name in list_labs())
