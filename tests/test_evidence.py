"""Evidence files: pcapng read back by tshark with every comment; case JSON and results."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from conformance.evidence.pcapng import PcapFrame, write_pcapng
from conformance.evidence.record import CaseRecord
from conformance.evidence.writer import case_file_stem, read_case_documents, write_case_evidence
from conformance.report.results import gather_results, write_junit, write_results
from conformance.wire.capture import WireFrame

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    command = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for field in fields:
        command += ["-e", field]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


def udp_frame(destination: str, payload: bytes) -> bytes:
    return bytes(Ether() / IP(src="192.0.2.1", dst=destination) / UDP(dport=9) / payload)


@needs_tshark
def test_pcapng_opens_in_tshark_with_every_comment(tmp_path: Path) -> None:
    path = tmp_path / "case.pcapng"
    frames = [
        PcapFrame(1_700_000_000_123_456_789, udp_frame("192.0.2.2", b"odd"), "tester: one"),
        PcapFrame(1_700_000_000_223_456_789, udp_frame("192.0.2.3", b"even!"), "dut: two"),
    ]
    write_pcapng(path, frames, section_comment="case: x\nverdict: pass",
                 interface_name="wire", application="test")
    rows = tshark_fields(path, "frame.number", "frame.comment", "ip.dst", "frame.time_epoch")
    assert [row[:3] for row in rows] == [["1", "tester: one", "192.0.2.2"],
                                         ["2", "dut: two", "192.0.2.3"]]
    assert rows[0][3] == "1700000000.123456789"  # nanosecond timestamps survive
    info = subprocess.run(["capinfos", str(path)], capture_output=True, text=True).stdout
    assert "verdict: pass" in info


def test_case_file_stem_is_a_safe_file_name() -> None:
    assert case_file_stem("rfc1122/test_x.py::test_y[a b]") == "rfc1122__test_x__test_y-a-b"


def sample_record() -> CaseRecord:
    record = CaseRecord(case_id="rfc768/test_u.py::test_v", target="linux",
                        requirements=["RFC1122-4.1.3.3a"], level="MUST")
    record.observe("call.01.send", 4)
    record.frames = [
        WireFrame(1, "tester", udp_frame("192.0.2.1", b"a"), 1_000, 5_000, ["tester: probe"]),
        WireFrame(2, "dut", udp_frame("192.0.2.2", b"b"), 2_000, 6_000, []),
    ]
    return record


def test_observations_are_recorded_once() -> None:
    record = sample_record()
    with pytest.raises(ValueError, match="twice"):
        record.observe("call.01.send", 5)


@needs_tshark
def test_case_evidence_comments_every_frame_and_names_the_verdict(tmp_path: Path) -> None:
    entry = {"verdict": "fail", "message": "AssertionError: boom", "expectation": None,
             "duration_s": 0.5, "doc": "A case."}
    write_case_evidence(tmp_path, sample_record(), entry)
    pcap = tmp_path / "rfc768__test_u__test_v.pcapng"
    comments = [row[0] for row in tshark_fields(pcap, "frame.comment")]
    assert comments == ["tester: probe", "dut: not matched by any expectation"]
    info = subprocess.run(["capinfos", str(pcap)], capture_output=True, text=True).stdout
    assert "verdict: fail" in info and "RFC1122-4.1.3.3a" in info
    (document,) = read_case_documents(tmp_path)
    assert document["frames"][1]["time_s"] == 0.000001
    assert document["evidence"] == pcap.name


def test_results_and_junit_follow_the_verdicts(tmp_path: Path) -> None:
    for name, verdict, expectation in [("a", "pass", None), ("b", "fail", None),
                                       ("c", "fail", "expected"), ("d", "n/a", None),
                                       ("e", "error", None), ("f", "warn", None)]:
        record = CaseRecord(case_id=f"s/test_s.py::test_{name}", target="linux",
                            requirements=["R-1"], level="MUST")
        write_case_evidence(tmp_path, record, {"verdict": verdict, "message": f"m {name}",
                                               "expectation": expectation,
                                               "duration_s": 0.1, "doc": ""})
    results = gather_results({"target": "linux"}, read_case_documents(tmp_path))
    assert results["run"]["verdicts"] == {"pass": 1, "fail": 2, "n/a": 1, "error": 1, "warn": 1}
    required = {"id", "requirements", "level", "verdict", "message", "observations",
                "evidence", "duration_s"}
    assert all(required <= set(case) for case in results["cases"])
    write_results(tmp_path, results)
    assert json.loads((tmp_path / "results.json").read_text())["cases"][0]["id"].endswith("a")
    suite = ElementTree.parse(write_junit(tmp_path, results)).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("6", "1", "1", "1")
