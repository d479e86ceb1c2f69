"""The committed captures under pcaps/reference/ are valid evidence, checked offline.

Wireshark's own dissectors (through pyshark, as every run reads its captures: 1,000
captures here, under `-n 3`) read every capture; every packet carries its comment; the
section comment names the case and its verdict; the frames are the ones the case
recorded; Wireshark's view recorded with the case is what Wireshark says of the capture
now; and every case of the suites has its capture.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.evidence.wireshark import dissect, view_of
from tests.suite_runner import REPOSITORY, SUITES

REFERENCES = REPOSITORY / "pcaps" / "reference"
TARGETS = ("ref", "linux", "lwip", "gvisor")
CAPTURES = sorted(path for target in TARGETS for path in (REFERENCES / target).glob("*.pcapng"))

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def case_document(capture: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(capture.with_suffix(".json").read_text())
    return document


def values_of(tree: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a packet's layers."""
    if isinstance(tree, dict):
        found = [tree[key]] if key in tree else []
        return found + [value for child in tree.values() for value in values_of(child, key)]
    if isinstance(tree, list):
        return [value for child in tree for value in values_of(child, key)]
    return []


def packet_comment(layers: dict[str, Any]) -> str:
    comments = values_of(layers, "frame.comment")
    return str(comments[0]) if comments else ""


def is_malformed(layers: dict[str, Any]) -> bool:
    return bool(values_of(layers, "_ws.malformed"))


# Frames the tester malforms on purpose (a bad header length, a truncated header, an option
# running past the header, a quote of a bad header, a UDP or TCP header claiming more than
# the datagram holds) that Wireshark rightly calls malformed.
MALFORMED_ON_PURPOSE = ("IHL 4", "4 octets of UDP", "malformed option", "UDP length 4",
                        "UDP length 26", "beyond the frame", "header with IHL 4",
                        "4 octets", "version 5", "UDP length (18)", "data offset 15")


# The DUT, or addresses the DUT must ignore or treat as broadcast: the subnet's broadcast,
# the limited broadcast, the all-hosts group, another host on the link.
TESTER_DESTINATIONS = ("192.0.2.1", "192.0.2.255", "255.255.255.255", "224.0.0.1",
                       "192.0.2.77")


def deliberately_malformed(frame: dict[str, Any]) -> bool:
    return frame["sender"] == "tester" and any(
        marker in frame["comment"] for marker in MALFORMED_ON_PURPOSE)


@pytest.mark.parametrize("target", TARGETS)
def test_there_are_reference_captures(target: str) -> None:
    assert len(list((REFERENCES / target).glob("*.pcapng"))) >= 20


@pytest.mark.parametrize("capture", CAPTURES,
                         ids=[f"{path.parent.name}/{path.stem}" for path in CAPTURES])
def test_a_reference_capture_is_valid_evidence(capture: Path) -> None:
    document = case_document(capture)
    section = subprocess.run(["capinfos", str(capture)], capture_output=True, text=True,
                             check=True).stdout
    assert f"case: {document['id']}" in section
    assert f"verdict: {document['verdict']}" in section
    # n/a: the reference stack has no TCP yet.
    assert document["verdict"] in ("pass", "info", "n/a") or document["expectation"] == "expected"

    dissected = dissect(capture)
    frames = document["frames"]
    observations = document["observations"]
    view = view_of(dissected)
    assert observations["wireshark.frames"] == view.frames == len(frames)
    assert len(observations["wireshark.expert"]) == len(view.expert)
    assert len(observations["wireshark.bad_checksums"]) == len(view.bad_checksums)
    # No DUT of the four sends a frame Wireshark rejects.
    assert observations["wireshark.dut_frames_rejected"] == []
    # A case of the socket API alone (EAGAIN on an empty socket) has no frame to show.
    assert len(dissected) == len(frames)
    for layers, frame in zip(dissected, frames, strict=True):
        comment = packet_comment(layers)
        assert comment and comment == frame["comment"], f"frame {frame['number']}"
        assert comment.startswith(f"{frame['sender']}:"), comment
        if not deliberately_malformed(frame):
            assert not is_malformed(layers), f"frame {frame['number']} is malformed"
        ip = layers.get("ip")
        # Wireshark files the destination of a source-routed header under the option.
        if ip is not None and "ip.dst" in ip and not deliberately_malformed(frame):
            source, destination = ip["ip.src"], ip["ip.dst"]
            # Wireshark and scapy agree on who talked to whom.
            assert source in frame["summary"] and destination in frame["summary"], (
                frame["summary"])
            if frame["sender"] == "dut":
                assert source == "192.0.2.1"
            elif "router" not in comment:
                assert destination in TESTER_DESTINATIONS, destination


@pytest.mark.parametrize("target", TARGETS)
def test_every_case_has_a_reference_capture(target: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITES), "--target", target, "--slow",
         "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=REPOSITORY,
    )
    collected = {line.split("suites/", 1)[1] for line in done.stdout.splitlines()
                 if "::" in line}
    captured = {case_document(capture)["id"] for capture in CAPTURES
                if capture.parent.name == target}
    assert collected, f"collecting the {target} cases failed:\n{done.stdout}{done.stderr}"
    assert collected == captured, (
        "run scripts/refresh_reference_pcaps.py: "
        f"missing {sorted(collected - captured)}, stale {sorted(captured - collected)}"
    )
