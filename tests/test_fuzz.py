"""`conformance fuzz`: the frames (offline), and runs against every target and against
reference stacks broken as a fuzzer should find them (root)."""

import json
import os
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, in4_chksum
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

from conformance.evidence.pcapng import PcapFrame, write_pcapng
from conformance.fuzz.frames import CHOSEN_ADDRESSES, LIVENESS_PORTS, Aim, Mutator
from conformance.lab import addressing
from conformance.verdicts import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from tests.test_cli import agents_of, conformance_command, labs_of

PATCHES = Path(__file__).with_name("broken_ref_fuzz.py")
AIM = Aim(connection_sport=48001, snd_nxt=1_000_001, rcv_nxt=7_000_001)
FRAMES = 20_000


def frames_of(seed: int, count: int = FRAMES) -> list[Any]:
    mutator = Mutator(seed)
    mutator.aim(AIM)
    return [mutator.next_frame() for _ in range(count)]


def ipv4_start(data: bytes) -> int | None:
    """Where the IPv4 header starts in a frame (after a VLAN tag, if any)."""
    if len(data) >= 34 and data[12:14] == b"\x08\x00":
        return 14
    if len(data) >= 38 and data[12:14] == b"\x81\x00" and data[16:18] == b"\x08\x00":
        return 18
    return None


# --- offline ---------------------------------------------------------------------------


def test_the_same_seed_sends_the_same_frames_and_another_seed_others() -> None:
    first = frames_of(11, 5000)
    assert frames_of(11, 5000) == first
    other = frames_of(12, 5000)
    assert sum(a.data == b.data for a, b in zip(first, other, strict=True)) < 500


def test_the_frames_cover_every_kind_of_probe_and_mutation() -> None:
    frames = frames_of(5)
    kinds = {frame.description.split(":")[0] for frame in frames}
    for family in ("eth.vlan", "eth.unknown", "arp.", "ip.options-", "ip.fragment-",
                   "ip.tiny-fragment-", "icmp.echo", "icmp.frag-needed-", "icmp.unreachable-",
                   "udp.open", "udp.closed", "tcp.syn-options-", "tcp.conn-", "scapy.fuzz-"):
        assert any(kind.startswith(family) for kind in kinds), family
    mutations = " ".join(frame.description for frame in frames)
    for mutation in ("bits flipped", "octets ", "truncated to", "random octets appended",
                     "tcp.flags=", "ip.flags_frag=", "checksums fixed", ": as built"):
        assert mutation in mutations, mutation
    assert all(14 <= len(frame.data) <= 1514 for frame in frames)


def test_addresses_stay_in_the_lab_and_no_frame_is_addressed_to_a_liveness_port() -> None:
    """IPv4 source and destination are always one of the lab's documentation-range or
    special addresses; an intact IPv4 header never carries TCP or UDP to the ports the
    liveness checks use."""
    for frame in frames_of(7):
        start = ipv4_start(frame.data)
        if start is None:
            continue
        data = frame.data
        for address in (data[start + 12:start + 16], data[start + 16:start + 20]):
            assert ".".join(map(str, address)) in CHOSEN_ADDRESSES, frame.description
        unfragmented = struct.unpack_from("!H", data, start + 6)[0] & 0x1FFF == 0
        if data[start] == 0x45 and data[start + 9] in (6, 17) and unfragmented \
                and len(data) >= start + 24:
            ports = struct.unpack_from("!HH", data, start + 20)
            assert not LIVENESS_PORTS & set(ports), frame.description


def test_fixed_checksums_are_valid_by_scapys_arithmetic() -> None:
    """Frames whose checksums were fixed verify with scapy's own checksum functions (over
    the octets as sent: a re-encoding would tidy malformed options away)."""
    checked = 0
    for frame in frames_of(9, 5000):
        data = frame.data
        if not frame.description.endswith("checksums fixed") or ipv4_start(data) != 14:
            continue
        ihl = (data[14] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 16)[0]
        if ihl < 20 or len(data) < 14 + ihl:
            continue
        assert checksum(data[14:14 + ihl]) == 0, frame.description
        if struct.unpack_from("!H", data, 20)[0] & 0x3FFF or not ihl <= total <= len(data) - 14:
            continue
        segment, proto = data[14 + ihl:14 + total], data[23]
        if proto == 1 and len(segment) >= 4:
            assert checksum(segment) == 0, frame.description
        elif proto in (6, 17) and len(segment) >= (20 if proto == 6 else 8):
            # The pseudo-header of the header's addresses (scapy would take a source
            # route's last hop; the fuzzer checksums for the DUT named in the header).
            header = IP(src=".".join(map(str, data[26:30])), dst=".".join(map(str, data[30:34])))
            assert in4_chksum(proto, header, segment) in (0, 0xFFFF), frame.description
        else:
            continue
        checked += 1
    assert checked > 500


# --- against the targets -----------------------------------------------------------------

def fuzz(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`conformance fuzz ... --json`; its result and summary.json (which it must equal)."""
    out = tmp_path / "fuzz"
    tmp_path.mkdir(exist_ok=True)
    child = subprocess.Popen(conformance_command("fuzz", *args, "--out", str(out), "--json"),
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "COLUMNS": "400"})
    stdout, stderr = child.communicate(timeout=300)
    completed = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    assert "Traceback (most recent call last)" not in stderr.split("dut_stderr_tail")[0]
    assert not labs_of(child.pid) and not agents_of(child.pid), "the lab or its DUT remains"
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() \
        else {}
    if summary:
        assert json.loads(stdout) == summary
    return completed, summary


def reproducer_comments(path: Path) -> list[str]:
    """Every frame comment of a pcapng, as tshark reads it."""
    listing = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.comment"],
                             capture_output=True, text=True, check=True).stdout
    return listing.splitlines()


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
@pytest.mark.parametrize("target", ["ref", "linux", "lwip", "gvisor"])
def test_every_target_stays_alive_through_a_short_run(tmp_path: Path, target: str) -> None:
    completed, summary = fuzz(tmp_path, "--target", target, "--frames", "2000", "--seed", "3",
                              "--check-every", "500")
    assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
    assert summary["alive"] is True and summary["loss"] is None
    assert summary["frames_sent"] == 2000 and sum(summary["seeds"].values()) == 2000
    assert summary["rounds"] == 4 and summary["checks_passed"] == 5  # one before the frames
    assert [sample["frames_sent"] for sample in summary["memory"]] == [0, 500, 1000, 1500, 2000]
    assert all(sample["rss_kib"] > 0 for sample in summary["memory"])
    assert summary["dut_frames"] > 0 and summary["reproducer"] is None


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_a_wedged_stack_loses_liveness_and_its_round_becomes_the_reproducer(
    tmp_path: Path,
) -> None:
    """A stack that stops handling IPv4 after the first header with options: the run
    stops at the first echo request it leaves unanswered, exit 1, and reproducer.pcapng
    holds that round's frames (numbered on from the rounds that passed) with the
    options frame that wedged it."""
    completed, summary = fuzz(tmp_path, "--target", "ref", "--frames", "5000", "--seed", "1",
                              "--check-every", "200", "--ref-patch",
                              f"{PATCHES}:wedged_by_ip_options")
    assert completed.returncode == EXIT_FAIL, completed.stdout + completed.stderr
    assert summary["alive"] is False
    assert "no answer to an echo request" in summary["loss"]
    lost = summary["lost_after_frame"]
    assert 0 < lost < 5000 and summary["frames_sent"] == lost
    comments = reproducer_comments(Path(summary["reproducer"]))
    numbers = [int(comment.split("fuzz frame ")[1].split(":")[0])
               for comment in comments if "tester: fuzz frame " in comment]
    round_start = (summary["rounds"] - 1) * 200 + 1
    assert numbers == list(range(round_start, lost + 1))
    assert any("ip.options" in comment for comment in comments if "fuzz frame" in comment)
    assert summary["checks_passed"] == summary["rounds"]  # every round but the last passed

    # The reproducer replayed: the broken stack wedges again, a sound one stays alive.
    again, replayed = fuzz(tmp_path / "again", "--target", "ref", "--replay",
                           summary["reproducer"], "--ref-patch",
                           f"{PATCHES}:wedged_by_ip_options")
    assert again.returncode == EXIT_FAIL and replayed["alive"] is False, again.stderr
    assert replayed["frames_sent"] <= len(numbers) and replayed["seed"] is None
    sound, healthy = fuzz(tmp_path / "sound", "--target", "ref", "--replay",
                          summary["reproducer"])
    assert sound.returncode == EXIT_OK and healthy["alive"] is True, sound.stderr
    assert healthy["frames_sent"] == len(numbers) and healthy["checks_passed"] == 2


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_a_stack_that_dies_is_reported_with_its_stderr(tmp_path: Path) -> None:
    completed, summary = fuzz(tmp_path, "--target", "ref", "--frames", "5000", "--seed", "2",
                              "--ref-patch", f"{PATCHES}:killed_by_a_zero_udp_checksum")
    assert completed.returncode == EXIT_FAIL, completed.stdout + completed.stderr
    assert summary["alive"] is False and "the DUT died" in summary["loss"]
    assert "RuntimeError: a UDP datagram without a checksum" in summary["dut_stderr_tail"]
    assert Path(summary["reproducer"]).exists()


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_a_reproducer_of_lwips_udp_lite_assertion_replays_as_its_death(tmp_path: Path) -> None:
    """What `conformance fuzz --target lwip --seed 20261203` found at frame 301,408: a
    UDP-Lite datagram (protocol 136) whose checksum coverage (49152) runs past its end
    (RFC 3828 3.1: MUST be discarded). Debian's lwIP 2.1.3 (LWIP_UDPLITE 1) fails
    `LWIP_ASSERT("delete me", chksum_len < 0x7fff)` in inet_chksum.c and aborts. Replayed
    from a reproducer with that frame alone: the DUT's death, with the assertion from
    its stderr; the control after it, that the same run with a coverage inside the
    datagram leaves lwIP alive."""
    def reproducer(coverage: int, name: str) -> Path:
        header = struct.pack("!HHHH", 1281, 20611, coverage, 0x0203)
        frame = bytes(Ether(src=addressing.ROUTER.mac, dst=addressing.DUT.mac)
                      / IP(src=addressing.ROUTER.ip, dst=addressing.DUT.ip, proto=136)
                      / Raw(header + bytes(28)))
        path = tmp_path / f"{name}.pcapng"
        write_pcapng(path, [PcapFrame(0, frame, "tester: fuzz frame 1: udp-lite coverage")],
                     section_comment="test", interface_name="lab", application="test")
        return path

    completed, summary = fuzz(tmp_path / "past", "--target", "lwip", "--replay",
                              str(reproducer(0xC000, "past-the-end")))
    assert completed.returncode == EXIT_FAIL, completed.stdout + completed.stderr
    assert "the DUT died" in summary["loss"] and "SIGABRT" in summary["loss"]
    assert 'Assertion "delete me" failed' in summary["dut_stderr_tail"]
    control, alive = fuzz(tmp_path / "inside", "--target", "lwip", "--replay",
                          str(reproducer(8, "inside")))
    assert control.returncode == EXIT_OK and alive["alive"] is True, control.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--frames", "0"], "--frames"),
    (["--target", "no-such-target"], "unknown target"),
    (["--target", "ref", "--sysctl", "net.ipv4.tcp_sack=0"], "--sysctl applies to the linux"),
    (["--replay", __file__], "not a little-endian pcapng file"),
])
def test_bad_fuzz_options_are_usage_errors_before_any_lab(tmp_path: Path, args: list[str],
                                                          says: str) -> None:
    completed = subprocess.run(conformance_command("fuzz", *args, "--out", str(tmp_path / "f")),
                               cwd=tmp_path, capture_output=True, text=True, timeout=60,
                               check=False)
    assert completed.returncode == EXIT_USAGE, completed.stderr
    assert says in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "f").exists()
