"""Wireshark's view of every case (conformance/evidence/wireshark.py): expert information
through pyshark, a DUT frame Wireshark rejects raising the case to warn, and pyshark used
so that it cannot crash (its own event loop per capture, exit status kept, deadlines)."""

import functools
import gc
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
from pyshark.tshark.tshark import get_tshark_version
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from conformance.evidence.record import CaseRecord
from conformance.evidence.wireshark import (
    WiresharkUnavailable,
    _tshark_version_once,
    observe_wireshark_view,
    wireshark_view,
)
from conformance.wire.capture import Sender, WireFrame
from tests.suite_runner import REPOSITORY, case, privileged, run_suites

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

REFERENCES = REPOSITORY / "pcaps" / "reference"
PATCHES = REPOSITORY / "tests" / "broken_ref_wire.py"
DUT, TESTER = "02:00:00:00:00:01", "02:00:00:00:00:02"


def frame(number: int, sender: Sender, packet: IP) -> WireFrame:
    source, destination = (DUT, TESTER) if sender == "dut" else (TESTER, DUT)
    data = bytes(Ether(src=source, dst=destination) / packet)
    return WireFrame(number=number, sender=sender, data=data, monotonic_ns=number * 1000,
                     timestamp_ns=1_700_000_000_000_000_000 + number * 1000)


def record_of(*frames: WireFrame) -> CaseRecord:
    record = CaseRecord("suite/test_x.py::test_y", "ref", ["RFC768-a"], "MUST")
    record.frames = list(frames)
    return record


def bad_udp_checksum(source: str, destination: str) -> IP:
    return IP(src=source, dst=destination) / UDP(sport=7000, dport=40000, chksum=0x1234) / b"hi"


def test_a_dut_frame_with_a_bad_checksum_is_rejected_and_named(tmp_path: Path) -> None:
    record = record_of(
        frame(1, "tester", IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=40000, dport=7000)),
        frame(2, "dut", bad_udp_checksum("192.0.2.1", "192.0.2.2")),
    )
    rejected = observe_wireshark_view(record, tmp_path)
    assert rejected == ["frame 2: bad udp.checksum"]
    assert record.observations["wireshark.frames"] == 2
    assert record.observations["wireshark.bad_checksums"] == [
        {"frame": 2, "sender": "dut", "field": "udp.checksum"}]
    assert any(item["frame"] == 2 and item["group"] == "checksum"
               for item in record.observations["wireshark.expert"])
    assert list(tmp_path.iterdir()) == []  # the capture read is not left behind


def test_the_same_frame_from_the_tester_is_recorded_but_not_rejected(tmp_path: Path) -> None:
    record = record_of(frame(1, "tester", bad_udp_checksum("192.0.2.2", "192.0.2.1")))
    assert observe_wireshark_view(record, tmp_path) == []
    assert record.observations["wireshark.bad_checksums"] == [
        {"frame": 1, "sender": "tester", "field": "udp.checksum"}]


def test_a_good_dut_frame_is_not_rejected(tmp_path: Path) -> None:
    record = record_of(frame(1, "dut", IP(src="192.0.2.1", dst="192.0.2.2")
                             / TCP(sport=5000, dport=40000, flags="SA")))
    assert observe_wireshark_view(record, tmp_path) == []
    assert record.observations["wireshark.bad_checksums"] == []
    assert record.observations["wireshark.dut_frames_rejected"] == []


def test_a_malformed_dut_frame_is_rejected(tmp_path: Path) -> None:
    # A UDP length 8 octets past the datagram: Wireshark's UDP dissector calls it malformed.
    packet = IP(bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=7000, dport=40000)
                      / b"data"))
    packet[UDP].len += 8
    record = record_of(frame(1, "dut", packet))
    rejected = observe_wireshark_view(record, tmp_path)
    assert len(rejected) == 1 and rejected[0].startswith("frame 1: Bad length value")
    assert record.observations["wireshark.expert"][0]["protocol"] == "udp"


def test_what_a_payload_dissector_says_is_recorded_but_not_held_against_the_dut(
    tmp_path: Path,
) -> None:
    """Wireshark dissects UDP from port 27500 as QuakeWorld, which throws on a test
    payload ("Malformed Packet"): seen in a gvisor run, whose ephemeral ports span
    1024-65535. The datagram itself is well formed."""
    record = record_of(frame(1, "dut", IP(src="192.0.2.1", dst="192.0.2.2")
                             / UDP(sport=27500, dport=9) / b"xxxxx"))
    assert observe_wireshark_view(record, tmp_path) == []
    [item] = record.observations["wireshark.expert"]
    assert (item["protocol"], item["group"]) == ("quakeworld", "malformed")


def test_a_bad_checksum_inside_an_icmp_quote_is_the_testers(tmp_path: Path) -> None:
    """The quote of an ICMP error is the offending datagram as it arrived (RFC 792), which
    a case may have broken on purpose."""
    quote = IPerror(src="192.0.2.2", dst="192.0.2.1", chksum=0x0101) / UDPerror(
        sport=40000, dport=7000)
    record = record_of(frame(1, "dut", IP(src="192.0.2.1", dst="192.0.2.2")
                             / ICMP(type=3, code=3) / quote))
    assert observe_wireshark_view(record, tmp_path) == []
    assert all(bad.get("in_quote") for bad in record.observations["wireshark.bad_checksums"])


def test_a_case_without_frames_has_an_empty_view(tmp_path: Path) -> None:
    record = record_of()
    assert observe_wireshark_view(record, tmp_path) == []
    assert record.observations["wireshark.frames"] == 0


def test_the_tcp_analysis_flags_of_a_reference_capture() -> None:
    """The TCP analysis of the SYN-ACK retransmission case: Wireshark sees the DUT's
    retransmissions as the case did."""
    capture = next((REFERENCES / "linux").glob("*unanswered_synack_is_retransmitted*.pcapng"))
    view = wireshark_view(capture)
    assert any(item.flag == "tcp.analysis.retransmission" for item in view.expert)


def tshark_children() -> list[int]:
    """tshark processes whose parent is this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name", "").strip() == "tshark" and int(fields["PPid"]) == os.getpid():
            found.append(int(entry.name))
    return found


def a_reference_capture() -> Path:
    return sorted((REFERENCES / "ref").glob("*.pcapng"))[0]


# A pipe left open shows only when it is collected, as an unraisable ResourceWarning.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_failing_tshark_is_reported_with_its_error(caplog: pytest.LogCaptureFixture) -> None:
    """pyshark's kill of a tshark that had already exited lost its exit status (asyncio:
    "Unknown child process", returncode 255) and a failed read passed for an empty one;
    its close on a failed tshark left `__del__` to close again on a closed event loop, and
    tshark's stderr pipe open (seen once in CI: "unclosed file")."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" among them
        with pytest.raises(WiresharkUnavailable, match="unknown preference"):
            wireshark_view(a_reference_capture(), preferences={"no.such_preference": "TRUE"})
        gc.collect()
    assert "Unknown child process" not in caplog.text
    assert tshark_children() == []


def test_a_read_past_its_deadline_is_reported_and_tshark_is_gone() -> None:
    with pytest.raises(WiresharkUnavailable, match="did not read"):
        wireshark_view(a_reference_capture(), timeout_s=0.001)
    assert tshark_children() == []
    # And the next read works: nothing of the last one is left in the way.
    assert wireshark_view(a_reference_capture()).frames > 0


def test_many_reads_in_a_row_all_complete(caplog: pytest.LogCaptureFixture) -> None:
    """The pattern that crashed now and then: many captures read one after another in one
    process (under `-n 3`, beside other workers doing the same)."""
    captures = sorted((REFERENCES / "lwip").glob("*.pcapng"))[:40]
    for capture in captures:
        document = json.loads(capture.with_suffix(".json").read_text())
        assert wireshark_view(capture).frames == len(document["frames"]), capture.name
    assert "Unknown child process" not in caplog.text
    assert tshark_children() == []


@pytest.mark.parametrize(("name", "patch", "rejection"), [
    pytest.param("test_data_flows_both_ways", "tcp_checksums_off_by_one", "bad tcp.checksum",
                 marks=privileged),
    pytest.param("test_datagrams_go_to_the_destination_port_and_replies_to_the_source_port",
                 "udp_length_past_the_datagram", "Bad length value", marks=privileged),
])
def test_a_broken_ref_is_warned_about_by_wireshark(tmp_path: Path, name: str, patch: str,
                                                   rejection: str) -> None:
    broken = case(run_suites(tmp_path / "broken", "-k", name, "--ref-patch",
                             f"{PATCHES}:{patch}", target="ref", wireshark=True), name)
    rejected = broken["observations"]["wireshark.dut_frames_rejected"]
    assert rejected and all(rejection in line for line in rejected), rejected
    # The case's own checks hold: Wireshark's view is what makes it warn, naming frames.
    assert broken["verdict"] == "warn", broken["message"]
    assert "Wireshark rejects frames of the DUT: frame " in broken["message"]
    # Positive control: the stack as it is passes the same case, nothing rejected.
    intact = case(run_suites(tmp_path / "intact", "-k", name, target="ref", wireshark=True),
                  name)
    assert intact["verdict"] == "pass", intact["message"]
    assert intact["observations"]["wireshark.dut_frames_rejected"] == []
    assert intact["observations"]["wireshark.frames"] > 0


def put_fake_tshark_first_on_path(monkeypatch: pytest.MonkeyPatch, directory: Path,
                                  script: str) -> None:
    """A `tshark` first on PATH that behaves as `script` says."""
    directory.mkdir()
    tshark = directory / "tshark"
    tshark.write_text(f"#!/bin/sh\n{script}\n")
    tshark.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")


BROKEN_TSHARK = """case "$1" in -v) echo "TShark (Wireshark) 4.0.17."; exit 0;; esac
echo "tshark: the capture file appears to be damaged or corrupt." >&2; exit 2"""


@pytest.mark.parametrize("script", [
    pytest.param(BROKEN_TSHARK, id="fails-reading"),
    pytest.param("exit 1", id="fails-its-version"),
])
def test_a_tshark_that_fails_is_reported(tmp_path: Path, script: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    put_fake_tshark_first_on_path(monkeypatch, tmp_path / "bin", script)
    _tshark_version_once.cache_clear()
    monkeypatch.setattr("conformance.evidence.wireshark._tshark_version_once",
                        functools.cache(get_tshark_version))
    with pytest.raises(WiresharkUnavailable, match="tshark failed"):
        wireshark_view(a_reference_capture())


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_a_case_whose_capture_tshark_cannot_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The evidence is incomplete: never a pass, whatever the case's checks said."""
    put_fake_tshark_first_on_path(monkeypatch, tmp_path / "bin", BROKEN_TSHARK)
    name = "test_data_flows_both_ways"
    entry = case(run_suites(tmp_path / "run", "-k", name, target="ref", wireshark=True), name)
    assert entry["verdict"] == "error"
    # (Which of pyshark's words come with it depends on when the fake tshark exits.)
    assert "Wireshark's view of the capture is missing: tshark failed" in entry["message"]


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_no_wireshark_reads_no_capture_and_records_no_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--no-wireshark`: a tshark that fails every read is never asked (else: error)."""
    put_fake_tshark_first_on_path(monkeypatch, tmp_path / "bin", BROKEN_TSHARK)
    name = "test_data_flows_both_ways"
    results = run_suites(tmp_path / "run", "-k", name, target="ref", wireshark=False)
    entry = case(results, name)
    assert entry["verdict"] == "pass", entry["message"]
    assert not [key for key in entry["observations"] if key.startswith("wireshark.")]
    assert results["run"]["wireshark"] is False
