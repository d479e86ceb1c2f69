"""Benchmarks of the tester and the reference stack (needs root).

    python scripts/benchmark.py [--labs 20] [--skip-suite] [--datagrams 20000]
                                [--targets ref,linux] [--workers 2,4] [--no-wireshark-too]
    python scripts/benchmark.py --bulk-mb 100 [--pair-mb 20]

Prints the per-case overhead of setting up and removing a lab (namespace, TAP device,
Linux agent), broken down by step; the same for the reference stack (bare TAP, packet
socket, stack process); the reference stack's core rate (UDP datagrams received and
sent per second, in process, no I/O); and for each target and worker count the default
run's wall time, CPU per case, lab time per case, DUT-timer waits and wall time over
those waits per worker (suite_run); with ``--no-wireshark-too`` each run once more with
``--no-wireshark`` (the captures not read by tshark). Figures go in the notes; tests never
assert on them.

With ``--bulk-mb`` or ``--pair-mb`` only the TCP bulk transfers run (scripts/bulk.py):
N MB each way between the reference stack and the Linux kernel over a lab's TAP link,
checked by sha256, with MB/s each way and the stack's packets per second; and N MB
between two reference stacks in one process, in segments per second.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.run.spec import default_workers
from conformance.targets.base import TargetOptions
from conformance.targets.linux import LinuxTarget
from conformance.targets.ref import RefTarget
from stack.host import Host, InterfaceConfig
from stack.sockets import SocketApi
from stack.wire.arp import ArpOp, ArpPacket
from stack.wire.ethernet import EthernetFrame, EtherType, MacAddress
from stack.wire.ipv4 import IpProtocol, Ipv4Header, Ipv4Packet
from stack.wire.udp import UdpDatagram

REPOSITORY = Path(__file__).resolve().parents[1]


def lab_overhead(count: int) -> dict[str, dict[str, float]]:
    """Set up and remove `count` labs the way each case does, timing every step."""
    steps: dict[str, list[float]] = {"namespace": [], "tap": [], "agent": [], "teardown": [],
                                     "total": []}
    target = LinuxTarget()
    for _ in range(count):
        stamps = [time.perf_counter()]
        lab = Lab.create()
        stamps.append(time.perf_counter())
        lab.add_tap(host=addressing.DUT)
        stamps.append(time.perf_counter())
        agent, _ = target.start_agent(lab)
        stamps.append(time.perf_counter())
        agent.close()
        lab.remove()
        stamps.append(time.perf_counter())
        for step, begin, end in zip(("namespace", "tap", "agent", "teardown"), stamps,
                                    stamps[1:], strict=False):
            steps[step].append(end - begin)
        steps["total"].append(stamps[-1] - stamps[0])
    return {step: summary(values) for step, values in steps.items()}


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))] * 1000, 1)}


def ref_start_overhead(count: int) -> dict[str, float]:
    """A lab with the reference stack started on it and stopped, as each ref case does."""
    totals = []
    for _ in range(count):
        start = time.perf_counter()
        lab = Lab.create()
        started = RefTarget().start(lab, TargetOptions())
        started.stop()
        lab.remove()
        totals.append(time.perf_counter() - start)
    return summary(totals)


def stack_core_rate(datagrams: int) -> dict[str, float]:
    """UDP datagrams per second through the sans-I/O core: received into a socket and
    read back, and sent (ARP already resolved)."""
    mac = MacAddress.from_string(addressing.DUT.mac)
    peer_mac = MacAddress.from_string(addressing.TESTER.mac)
    dut_ip, peer_ip = IPv4Address(addressing.DUT.ip), IPv4Address(addressing.TESTER.ip)
    host = Host(InterfaceConfig(mac, dut_ip, IPv4Network(addressing.LINK)))
    api = SocketApi(host)
    sock = api.socket("udp")
    api.bind(sock, dut_ip, 7000)
    payload = UdpDatagram(5000, 7000, b"x" * 100).emit(peer_ip, dut_ip)
    packet = Ipv4Packet(Ipv4Header(src=peer_ip, dst=dut_ip, protocol=IpProtocol.UDP), payload)
    frame = EthernetFrame(mac, peer_mac, EtherType.IPV4, packet.emit()).emit()
    start = time.perf_counter()
    for now in range(datagrams):
        host.receive(frame, now)
        api.recvmsg(sock, 2048, set())
    received = time.perf_counter() - start
    api.connect(sock, peer_ip, 5000)
    # The peer asks for our address: the stack learns its MAC and sends without resolving.
    request = ArpPacket(ArpOp.REQUEST, peer_mac, peer_ip, MacAddress(bytes(6)), dut_ip)
    host.receive(EthernetFrame(mac, peer_mac, EtherType.ARP, request.emit()).emit(), 0)
    host.take_frames()
    start = time.perf_counter()
    for now in range(datagrams):
        api.sendto(sock, b"x" * 100, None, set(), now)
        host.take_frames()
    sent = time.perf_counter() - start
    return {"received_per_s": round(datagrams / received), "sent_per_s": round(datagrams / sent)}


# A case that takes this long in its body waits on a DUT timer (an RTO, a delayed ACK, a
# probe): the time the catalogue must spend whatever the harness does.
TIMER_CASE_S = 0.5


def wireshark_read_cost(count: int) -> dict[str, float]:
    """Reading a case's capture with Wireshark's dissectors (evidence/wireshark.py, one
    tshark per capture), over the first `count` reference captures of linux: wall time
    and CPU (tshark's and pyshark's) per capture."""
    from conformance.evidence.wireshark import wireshark_view

    captures = sorted((REPOSITORY / "pcaps" / "reference" / "linux").glob("*.pcapng"))[:count]
    walls = []
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    for capture in captures:
        start = time.perf_counter()
        wireshark_view(capture)
        walls.append(time.perf_counter() - start)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    tshark = sum(getattr(after_children, f) - getattr(before_children, f)
                 for f in ("ru_utime", "ru_stime"))
    python = sum(getattr(after_self, f) - getattr(before_self, f)
                 for f in ("ru_utime", "ru_stime"))
    return {"captures": len(captures),
            "wall_per_capture_median_ms": round(statistics.median(walls) * 1000, 1),
            "tshark_cpu_per_capture_ms": round(tshark / len(captures) * 1000, 1),
            "pyshark_cpu_per_capture_ms": round(python / len(captures) * 1000, 1)}


def suite_run(target: str, workers: int, *, wireshark: bool = True) -> dict[str, object]:
    """The default run of `target` with `workers` (and without Wireshark's reads unless
    `wireshark`): wall time, the CPU of every process it started, per-case figures from
    results.json, and how close the wall time comes to the DUT-timer waits spread over
    the workers."""
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", target,
                        "--workers", str(workers), "--out", out, "--json",
                        *(() if wireshark else ("--no-wireshark",))],
                       cwd=REPOSITORY, capture_output=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        results = json.loads(Path(out, target, "results.json").read_text())
    cases = results["cases"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    bodies = [case["duration_s"] - case["lab_s"] for case in cases]
    timer_waits = sum(body for body in bodies if body >= TIMER_CASE_S)
    return {
        "workers": workers, "wireshark": wireshark, "cases": len(cases),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "cpu_per_case_ms": round(cpu / len(cases) * 1000, 1),
        "lab_per_case_median_ms": round(statistics.median(c["lab_s"] for c in cases) * 1000, 1),
        "longest_case_s": round(max(case["duration_s"] for case in cases), 2),
        "timer_cases": sum(1 for body in bodies if body >= TIMER_CASE_S),
        "timer_waits_s": round(timer_waits, 2),
        "wall_over_timer_waits_per_worker": round(wall / (timer_waits / workers), 2),
        "verdicts": results["run"]["verdicts"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--captures", type=int, default=50,
                        help="reference captures read with Wireshark's dissectors")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--no-wireshark-too", action="store_true",
                        help="each suite run once more with --no-wireshark")
    parser.add_argument("--targets", default="ref,linux", help="targets of the suite runs")
    parser.add_argument("--workers", default="", help="worker counts of the suite runs, "
                        "comma-separated [default: the default run's]")
    parser.add_argument("--datagrams", type=int, default=20000)
    parser.add_argument("--bulk-mb", type=int, default=0,
                        help="TCP transfer of this many MB each way, ref stack <-> Linux")
    parser.add_argument("--pair-mb", type=int, default=0,
                        help="TCP transfer of this many MB between two stacks in process")
    options = parser.parse_args()
    if options.bulk_mb or options.pair_mb:
        import bulk  # scripts/bulk.py, beside this file

        bulk_report: dict[str, object] = {}
        if options.pair_mb:
            bulk_report["tcp_in_process"] = bulk.pair_transfer(options.pair_mb)
        if options.bulk_mb:
            bulk_report["tcp_ref_linux"] = bulk.lab_transfer(options.bulk_mb)
        print(json.dumps(bulk_report, indent=2))
        return 0
    report: dict[str, object] = {
        "lab_overhead_linux": lab_overhead(options.labs),
        "lab_overhead_ref": ref_start_overhead(options.labs),
        "ref_core_udp": stack_core_rate(options.datagrams),
        "wireshark_read": wireshark_read_cost(options.captures),
    }
    if not options.skip_suite:
        counts = [int(n) for n in options.workers.split(",") if n] or [default_workers()]
        for target in options.targets.split(","):
            report[f"suite_{target}"] = [suite_run(target, n) for n in counts] + (
                [suite_run(target, n, wireshark=False) for n in counts]
                if options.no_wireshark_too else [])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
