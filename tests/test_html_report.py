"""The HTML report (`conformance report`), built from the committed reference evidence of
ref and linux, read as files and as a real headless Chromium renders it (Debian's
package, which scripts/setup.sh installs)."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.evidence.writer import case_file_stem
from conformance.report.html import write_report
from tests.test_cli import conformance_command

REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCE = REPOSITORY / "pcaps" / "reference"
# A Linux case with a known deviation whose capture holds a frame a check forbade.
DEVIATION = ("rfc1122/test_ipv4_input.py::"
             "test_invalid_source_address_is_silently_discarded[directed-broadcast]")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report([REFERENCE / "ref", REFERENCE / "linux"], out)
    return out


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    assert browser, "Chromium is missing: bash scripts/setup.sh installs Debian's chromium"
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120, check=True)


class Rows(HTMLParser):
    """The rows of table#cases (their data attributes and classes) and the #shown text."""

    def __init__(self) -> None:
        super().__init__()
        self.cases: list[dict[str, str]] = []
        self.shown = ""
        self._in_shown = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "tr" and "case" in attributes.get("class", "").split():
            self.cases.append(attributes)
        self._in_shown = attributes.get("id") == "shown"

    def handle_data(self, data: str) -> None:
        if self._in_shown:
            self.shown += data


def parsed(html: str) -> Rows:
    rows = Rows()
    rows.feed(html)
    return rows


def reference_cases(target: str) -> list[dict[str, object]]:
    cases: list[dict[str, object]] = json.loads(
        (REFERENCE / target / "results.json").read_text())["cases"]
    return cases


def test_the_index_lists_every_case_of_both_targets_with_its_verdicts(report: Path) -> None:
    rows = parsed((report / "index.html").read_text()).cases
    ref, linux = reference_cases("ref"), reference_cases("linux")
    assert {row["data-case"] for row in rows} == {str(c["id"]) for c in ref} | {
        str(c["id"]) for c in linux}
    by_id = {row["data-case"]: row["data-verdicts"].split() for row in rows}
    for case in linux:
        assert str(case["verdict"]) in by_id[str(case["id"])]
    assert (report / "compare.html").exists()
    assert len(list((report / "cases").glob("*.html"))) == len(ref) + len(linux)


def test_a_case_page_draws_every_frame_and_marks_the_forbidden_one(report: Path) -> None:
    page = (report / "cases" / f"linux--{case_file_stem(DEVIATION)}.html").read_text()
    document = json.loads((REFERENCE / "linux" / f"{case_file_stem(DEVIATION)}.json")
                          .read_text())
    assert page.count('<g class="rung ') == len(document["frames"])
    assert 'data-status="unexpected"' in page
    assert "RFC1122-3.2.1.3" in page and "fail" in page
    pcap = re.search(r'href="([^"]+\.pcapng)"', page)
    assert pcap and (report / "cases" / pcap.group(1)).resolve().exists()


def test_chromium_renders_the_index_and_applies_the_filter_from_the_address(
    report: Path,
) -> None:
    """Headless Chromium runs the page's script: `#verdict=fail&level=MUST` hides every
    case row without a MUST-level fail on some target, and says how many it shows."""
    index = (report / "index.html").resolve()
    dom = chromium("--dump-dom", f"{index.as_uri()}#verdict=fail&level=MUST").stdout
    rows = parsed(dom)
    visible = [row for row in rows.cases if "hidden" not in row.get("class", "").split()]
    expected = [row for row in rows.cases if "fail" in row["data-verdicts"].split()
                and row["data-level"] == "MUST"]
    assert visible == expected and 0 < len(visible) < len(rows.cases)
    assert rows.shown.strip() == f"{len(visible)} cases shown"


def test_chromium_draws_a_ladder_and_takes_a_screenshot(report: Path, tmp_path: Path) -> None:
    page = (report / "cases" / f"linux--{case_file_stem(DEVIATION)}.html").resolve()
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert '<svg id="ladder"' in dom and 'data-status="unexpected"' in dom
    shot = tmp_path / "ladder.png"
    chromium(f"--screenshot={shot}", "--window-size=1100,900", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


RETRANSMITTING = ("rfc9293/test_accept_queue.py::"
                  "test_unanswered_synack_is_retransmitted_with_backoff")


def test_chromium_shows_wiresharks_notes_on_their_frames(report: Path) -> None:
    """Wireshark's expert information (`wireshark.expert`) is written under the frame it
    is about: here the DUT's SYN-ACK retransmissions."""
    stem = case_file_stem(RETRANSMITTING)
    document = json.loads((REFERENCE / "linux" / f"{stem}.json").read_text())
    noted = {item["frame"] for item in document["observations"]["wireshark.expert"]
             if item["flag"] == "tcp.analysis.retransmission"}
    assert noted
    page = (report / "cases" / f"linux--{stem}.html").resolve()
    dom = chromium("--dump-dom", page.as_uri()).stdout
    rungs = re.findall(r'<g class="rung [^"]*" data-frame="(\d+)"[^>]*>(.*?)</g>', dom, re.S)
    marked = {int(number) for number, body in rungs
              if "Wireshark: This frame is a (suspected) retransmission" in body}
    assert marked == noted


def test_report_command_writes_the_report_beside_the_runs(tmp_path: Path) -> None:
    completed = subprocess.run(conformance_command(
        "report", str(REFERENCE / "lwip"), str(REFERENCE / "gvisor"), "--out",
        str(tmp_path / "r")), capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    assert f"Written: {tmp_path / 'r' / 'index.html'}" in completed.stdout
    compare = (tmp_path / "r" / "compare.html").read_text()
    kinds = re.findall(r'data-kind="([^"]+)"', compare)
    assert kinds and kinds[0] == "deviation"  # deviations first
