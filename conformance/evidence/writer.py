"""Write a case's evidence: `<case>.pcapng` (commented frames) and `<case>.json`."""

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scapy.layers.l2 import Ether

from conformance import __version__
from conformance.evidence.pcapng import PcapFrame, write_pcapng
from conformance.evidence.record import CaseRecord
from conformance.wire.capture import WireFrame

# Keys of a case entry in results.json (the contract other tools read).
RESULT_KEYS = (
    "id", "doc", "requirements", "level", "verdict", "message", "expectation",
    "observations", "choices", "evidence", "duration_s", "lab_s",
)


# In the document a case's set-up writes, until its verdict replaces it.
UNFINISHED = "unfinished"


def case_file_stem(case_id: str) -> str:
    """`rfc1122/test_x.py::test_y[p]` -> `rfc1122__test_x__test_y-p`."""
    stem = case_id.replace(".py::", "__").replace("/", "__").replace("::", "__")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")


def frame_summary(frame: WireFrame) -> str:
    try:
        return str(Ether(frame.data).summary())
    except Exception as error:  # a frame scapy cannot dissect is still evidence
        return f"undissectable frame ({error})"


def frame_comment(frame: WireFrame) -> str:
    if frame.comments:
        return "; ".join(frame.comments)
    if frame.sender == "dut":
        return "dut: not matched by any expectation"
    return "tester"


def section_comment(record: CaseRecord, entry: dict[str, Any]) -> str:
    lines = [
        f"case: {record.case_id}",
        f"requirements: {', '.join(record.requirements)} ({record.level})",
        f"target: {record.target}",
        f"verdict: {entry['verdict']}",
    ]
    if entry.get("expectation"):
        lines.append(f"expectation: {entry['expectation']}")
    if entry.get("message"):
        lines.append(f"reason: {entry['message']}")
    return "\n".join(lines)


def write_case_evidence(directory: Path, record: CaseRecord, entry: dict[str, Any]) -> Path:
    """Write both files and return the JSON path. `entry` holds the verdict fields."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = case_file_stem(record.case_id)
    pcap_path = directory / f"{stem}.pcapng"
    write_pcapng(
        pcap_path,
        [PcapFrame(f.timestamp_ns, f.data, frame_comment(f)) for f in record.frames],
        section_comment=section_comment(record, entry),
        interface_name=f"{record.target} DUT wire",
        application=f"conformance {__version__}",
    )
    start_ns = record.frames[0].monotonic_ns if record.frames else 0
    document = {
        **entry,
        "id": record.case_id,
        "target": record.target,
        "requirements": record.requirements,
        "level": record.level,
        "observations": record.observations,
        "choices": record.choices,
        "evidence": pcap_path.name,
        "calls": [asdict(call) for call in record.calls],
        # When the first frame came, in the calls' time (seconds since the case started).
        "first_frame_s": round((start_ns - record.started_monotonic_ns) / 1e9, 6)
        if record.frames else None,
        "frames": [
            {
                "number": f.number,
                "sender": f.sender,
                "time_s": round((f.monotonic_ns - start_ns) / 1e9, 6),
                "summary": frame_summary(f),
                "comment": frame_comment(f),
            }
            for f in record.frames
        ],
        "environment": record.environment,
        "agent_log": record.agent_log,
    }
    json_path = directory / f"{stem}.json"
    temporary = json_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str))
    temporary.replace(json_path)
    return json_path


def mark_unfinished_case(directory: Path, case_id: str, message: str) -> bool:
    """Give the case's unfinished document (a verdict never replaced it) `message`; False
    when the case has no such document."""
    path = directory / f"{case_file_stem(case_id)}.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not document.get(UNFINISHED):
        return False
    document["message"] = message
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str))
    temporary.replace(path)
    return True


def discard_unfinished_cases(directory: Path) -> list[str]:
    """Remove the documents (and empty captures) of cases whose verdict never came: an
    interrupted run reports the cases it finished. Returns their IDs."""
    discarded = []
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get(UNFINISHED):
            discarded.append(str(document.get("id")))
            path.unlink(missing_ok=True)
            (directory / str(document.get("evidence", ""))).unlink(missing_ok=True)
    return discarded


def read_case_documents(directory: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(directory.glob("*.json")):
        if path.name == "results.json":
            continue
        document = json.loads(path.read_text())
        if "verdict" in document and "id" in document:
            documents.append(document)
    return documents
