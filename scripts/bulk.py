"""Bulk TCP transfer benchmarks of the reference stack (used by scripts/benchmark.py).

`lab_transfer`: the reference stack (`python -m stack.io`, driven through its agent) on a
TAP device in a lab namespace where the Linux kernel owns the other end, 192.0.2.2/24.
A TCP connection carries N MB from the reference stack to Linux, then another carries N
MB from Linux to the reference stack; each side hashes what it received, and the rates
and the reference stack's packets per second (from the kernel interface's counters:
what the kernel received was sent by the stack, and the other way round) are reported.
The Linux side is this file run as a child process inside the namespace
(`python scripts/bulk.py linux-peer ...`). Traffic stays on the lab's TAP link, in
192.0.2.0/24.

`pair_transfer`: two reference stacks in one process joined by the virtual link of
tests/tcp_pair.py, no I/O: the core's rate in segments per second.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))  # for tests.tcp_pair

REF = ("192.0.2.1", "02:00:00:00:00:01")
LINUX = ("192.0.2.2", "02:00:00:00:00:02")
TO_LINUX_PORT = 5001
TO_REF_PORT = 5002
SEND_CHUNK = 64 * 1024  # bytes per agent send call
RECV_SIZE = 256 * 1024  # bytes asked for per agent recv call
MB = 1_000_000
CALL_TIMEOUT = 120.0  # s, per agent call: a stalled transfer fails instead of hanging


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# --- the Linux side, inside the lab namespace ------------------------------------------


def linux_peer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bulk.py linux-peer")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--role", choices=("sink", "source"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    from conformance.agent.linux import enter_netns

    enter_netns(options.netns)
    if options.role == "sink":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LINUX[0], options.port))
        listener.listen(1)
        print("ready", flush=True)
        connection, _ = listener.accept()
        digest, received, first = hashlib.sha256(), 0, None
        buffer = bytearray(1 << 20)
        while count := connection.recv_into(buffer):
            first = first or time.perf_counter()
            digest.update(memoryview(buffer)[:count])
            received += count
        seconds = time.perf_counter() - (first or time.perf_counter())
        connection.close()  # the stack reads the end of the stream
        result = {"bytes": received, "sha256": digest.hexdigest(), "seconds": seconds}
    else:
        data = payload(options.size, options.seed)
        connection = socket.create_connection((REF[0], options.port), timeout=60)
        start = time.perf_counter()
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # the stack's FIN once it has read everything
        result = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "seconds": time.perf_counter() - start}
        connection.close()
    print(json.dumps(result), flush=True)
    return 0


def start_linux_peer(netns: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "linux-peer", "--netns", netns, *options],
        stdout=subprocess.PIPE, text=True, cwd=REPOSITORY,
    )


def peer_result(peer: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = peer.communicate(timeout=timeout)
    if peer.returncode != 0:
        raise RuntimeError(f"the Linux peer failed (status {peer.returncode}): {out}")
    return dict(json.loads(out.strip().splitlines()[-1]))


# --- the reference stack's side, through its agent --------------------------------------


def checked(result: Any, call: str) -> Any:
    from conformance.agent.client import Errno

    if isinstance(result, Errno):
        raise RuntimeError(f"reference stack: {call} failed with {result.name}")
    return result


def ref_send_all(agent: Any, sock: int, data: bytes) -> None:
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        chunk = bytes(view[offset:offset + SEND_CHUNK])
        sent = checked(agent.call("send", {"sock": sock, "data": base64.b64encode(chunk)
                                            .decode()}, timeout=CALL_TIMEOUT), "send")
        offset += int(sent)


def ref_receive_all(agent: Any, sock: int) -> tuple[int, str, float]:
    """Bytes, sha256 and seconds from the first data to the end of the stream."""
    digest, received, first = hashlib.sha256(), 0, None
    while True:
        result = checked(agent.call("recv", {"sock": sock, "size": RECV_SIZE},
                                    timeout=CALL_TIMEOUT), "recv")
        data = base64.b64decode(result["data"])
        if not data:
            break
        first = first or time.perf_counter()
        digest.update(data)
        received += len(data)
    return received, digest.hexdigest(), time.perf_counter() - (first or time.perf_counter())


def kernel_link_packets(netns: str, ifname: str) -> tuple[int, int]:
    """(received, sent) packets of the kernel's end of the TAP link."""
    from pyroute2 import NetNS

    with NetNS(netns) as ns:
        link = ns.link("get", index=ns.link_lookup(ifname=ifname)[0])[0]
    stats = link.get_attr("IFLA_STATS64")
    return int(stats["rx_packets"]), int(stats["tx_packets"])


def lab_transfer(size_mb: int, seed: int = 4) -> dict[str, Any]:
    from pyroute2 import NetNS

    from conformance.agent.client import AgentClient
    from conformance.lab.netns import Lab, install_exit_handlers

    size = size_mb * MB
    install_exit_handlers()
    lab = Lab.create()
    agent = None
    try:
        tap_fd, ifname = lab.add_bare_tap(mtu=1500)
        with NetNS(lab.name) as ns:
            link = ns.link_lookup(ifname=ifname)[0]
            ns.link("set", index=link, address=LINUX[1])
            ns.addr("add", index=link, address=LINUX[0], prefixlen=24)
        agent = AgentClient(
            [sys.executable, "-m", "stack.io", "--tap-fd", str(tap_fd), "--mac", REF[1],
             "--address", f"{REF[0]}/24", "--seed", str(seed)],
            name="reference stack", pass_fds=(tap_fd,),
        )
        agent.hello()
        report: dict[str, Any] = {"megabytes": size_mb}

        # Reference stack -> Linux.
        data = payload(size, seed)
        expected = hashlib.sha256(data).hexdigest()
        sink = start_linux_peer(lab.name, "--role", "sink", "--port", str(TO_LINUX_PORT))
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        before = kernel_link_packets(lab.name, ifname)
        sock = checked(agent.call("socket", {"type": "tcp"}), "socket")
        checked(agent.call("connect", {"sock": sock, "addr": LINUX[0], "port": TO_LINUX_PORT},
                           timeout=CALL_TIMEOUT), "connect")
        ref_send_all(agent, sock, data)
        checked(agent.call("shutdown", {"sock": sock, "how": "SHUT_WR"}), "shutdown")
        ref_receive_all(agent, sock)  # Linux closes once it has read everything
        received = peer_result(sink, timeout=CALL_TIMEOUT)
        after = kernel_link_packets(lab.name, ifname)
        checked(agent.call("close", {"sock": sock}), "close")
        report["ref_to_linux"] = direction_report(
            received["bytes"], received["sha256"] == expected, received["seconds"], before,
            after, size)

        # Linux -> reference stack.
        listener = checked(agent.call("socket", {"type": "tcp"}), "socket")
        checked(agent.call("bind", {"sock": listener, "addr": REF[0], "port": TO_REF_PORT}),
                "bind")
        checked(agent.call("listen", {"sock": listener, "backlog": 1}), "listen")
        accepting = agent.start("accept", {"sock": listener})
        before = kernel_link_packets(lab.name, ifname)
        source = start_linux_peer(lab.name, "--role", "source", "--port", str(TO_REF_PORT),
                                  "--size", str(size), "--seed", str(seed + 1))
        connection = checked(accepting.result(CALL_TIMEOUT), "accept")["sock"]
        count, digest, seconds = ref_receive_all(agent, connection)
        checked(agent.call("close", {"sock": connection}), "close")  # Linux reads the FIN
        sent = peer_result(source, timeout=CALL_TIMEOUT)
        after = kernel_link_packets(lab.name, ifname)
        checked(agent.call("close", {"sock": listener}), "close")
        report["linux_to_ref"] = direction_report(
            count, digest == sent["sha256"], seconds, before, after, size)
        return report
    finally:
        if agent is not None:
            agent.close()
        lab.remove()


def direction_report(count: int, intact: bool, seconds: float, before: tuple[int, int],
                     after: tuple[int, int], size: int) -> dict[str, Any]:
    # The kernel received what the stack sent, and sent what the stack received.
    sent_by_ref, received_by_ref = after[0] - before[0], after[1] - before[1]
    return {
        "bytes": count, "intact": intact and count == size,
        "seconds": round(seconds, 2), "mb_per_s": round(count / MB / seconds, 2),
        "ref_segments_sent": sent_by_ref, "ref_segments_received": received_by_ref,
        "ref_packets_per_s": round((sent_by_ref + received_by_ref) / seconds),
    }


# --- two stacks in one process ----------------------------------------------------------


def pair_transfer(size_mb: int, seed: int = 4) -> dict[str, Any]:
    from tests.tcp_pair import Pair, StreamReader, StreamWriter

    data = payload(size_mb * MB, seed)
    pair = Pair(delay=100_000)  # 100 us one way
    client, server = pair.connect()
    writer = StreamWriter(pair.a, client, data, [SEND_CHUNK])
    reader = StreamReader(pair.b, server)
    start_segments = sum(pair.counters.tcp_segments.values())
    virtual_start = pair.now
    start, cpu_start = time.perf_counter(), time.process_time()
    pair.run(lambda: all([writer.pump(), reader.pump()]), within=3600 * 10**9)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    segments = sum(pair.counters.tcp_segments.values()) - start_segments
    return {
        "megabytes": size_mb, "intact": bytes(reader.received) == data,
        "wall_seconds": round(seconds, 2), "segments": segments,
        "segments_per_s": round(segments / seconds),
        # Each segment is sent by one stack and received by the other, on one core; CPU
        # time shows the rate on a machine busy with other work.
        "cpu_seconds": round(cpu_seconds, 2),
        "segments_per_cpu_s": round(segments / cpu_seconds),
        "mb_per_s_wall": round(len(data) / MB / seconds, 2),
        "virtual_seconds": round((pair.now - virtual_start) / 10**9, 3),
        "counters": pair.describe(),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["linux-peer"]:
        sys.exit(linux_peer(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bulk-mb", type=int, default=0)
    parser.add_argument("--pair-mb", type=int, default=0)
    options = parser.parse_args()
    results: dict[str, Any] = {}
    if options.pair_mb:
        results["pair"] = pair_transfer(options.pair_mb)
    if options.bulk_mb:
        results["lab"] = lab_transfer(options.bulk_mb)
    print(json.dumps(results, indent=2))
