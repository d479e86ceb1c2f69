"""`conformance coverage`: requirement -> cases, reasons, gaps, exit statuses.

The cases are collected for real (pytest collection of a small temporary suites
directory, the @requirement marker), against a small temporary catalogue.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import conformance.run.layout
from conformance import cli
from conformance.report.coverage import build_coverage
from conformance.requirements.catalogue import Catalogue, Requirement, requirement_order
from conformance.verdicts import EXIT_FAIL, EXIT_OK, EXIT_USAGE

WIDE = {"COLUMNS": "400"}

CATALOGUE = '''
[[requirement]]
id = "RFC9293-3.10.7.4a"
level = "MUST"
summary = "Acknowledged data is delivered."

[[requirement]]
id = "RFC9293-3.9"
level = "SHOULD"
summary = "A section that sorts before 3.10."

[[requirement]]
id = "RFC768-1"
level = "MUST"
summary = "UDP checksums are verified."

[[requirement]]
id = "RFC768-2"
level = "MAY"
summary = "Not observable from the wire."
uncovered = "not observable on the wire"

[[requirement]]
id = "RFC1122-4.1.3.4"
level = "SHOULD"
summary = "Nobody wrote a case or a reason for this one."
'''

COMPLETE_CATALOGUE = CATALOGUE.replace(
    'summary = "Nobody wrote a case or a reason for this one."',
    'summary = "Now with a reason."\nuncovered = "needs a router"')

SUITE = '''
from conformance.case import requirement


@requirement("RFC768-1")
def test_checksum_is_verified():
    """Checks RFC768-1."""


@requirement("RFC9293-3.10.7.4a", "RFC768-1")
def test_acknowledged_data_is_delivered():
    """Checks two."""


@requirement("RFC9293-3.9")
def test_section_three_nine():
    """Checks RFC9293-3.9."""
'''

UNKNOWN_ID = '''
from conformance.case import requirement


@requirement("RFC768-99")
def test_names_an_unknown_requirement():
    """Names a requirement the catalogue lacks."""
'''

CHECKSUM = "rfc768/test_coverage_suite.py::test_checksum_is_verified"
DELIVERED = "rfc768/test_coverage_suite.py::test_acknowledged_data_is_delivered"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args), env=WIDE, catch_exceptions=False)


def make_suites(root: Path, modules: dict[str, str]) -> Path:
    for name, text in modules.items():
        (root / "rfc768").mkdir(parents=True, exist_ok=True)
        (root / "rfc768" / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def suites_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One directory for every test: pytest imports suite modules into this process, and
    # a module name seen once cannot come from another path later.
    return make_suites(tmp_path_factory.mktemp("coverage") / "suites",
                       {"test_coverage_suite.py": SUITE})


@pytest.fixture
def suites(suites_directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(conformance.run.layout, "SUITES_ROOT", suites_directory)
    return suites_directory


def write_catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.toml"
    path.write_text(text)
    return path


def test_a_gap_is_listed_and_fails(tmp_path: Path, suites: Path) -> None:
    result = invoke("coverage", "--catalogue", str(write_catalogue(tmp_path, CATALOGUE)))
    assert result.exit_code == EXIT_FAIL, result.output
    rows: dict[str, str] = {}
    for line in result.stdout.splitlines():  # the table's rows, before the list of gaps
        if line.strip().startswith("RFC"):
            rows.setdefault(line.split()[0], line)
    assert "covered" in rows["RFC768-1"] and DELIVERED in rows["RFC768-1"]
    lines = result.stdout.splitlines()
    assert CHECKSUM in lines[lines.index(rows["RFC768-1"]) + 1]  # one case a line
    assert "uncovered: not observable on the wire" in rows["RFC768-2"]
    assert "GAP: no case" in rows["RFC1122-4.1.3.4"]
    assert "Gaps (1)" in result.stdout
    assert ("5 requirements: 3 covered, 1 uncovered with a reason, 1 gaps"
            in result.stdout)
    assert result.stderr == "conformance: coverage is incomplete: 1 gaps (no case, no reason)\n"


def test_rows_go_by_rfc_then_section(tmp_path: Path, suites: Path) -> None:
    result = invoke("coverage", "--catalogue", str(write_catalogue(tmp_path, CATALOGUE)))
    order = [line.split()[0] for line in result.stdout.splitlines()
             if re.match(r"\s+RFC\S+\s+(MUST|SHOULD|MAY)\s", line)]
    assert list(dict.fromkeys(order)) == ["RFC768-1", "RFC768-2", "RFC1122-4.1.3.4", "RFC9293-3.9",
                         "RFC9293-3.10.7.4a"]


def test_reasons_close_every_gap_and_exit_0(tmp_path: Path, suites: Path) -> None:
    result = invoke("coverage", "--catalogue",
                    str(write_catalogue(tmp_path, COMPLETE_CATALOGUE)), "--json")
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert report["summary"] == {
        "requirements": 5, "covered": 3, "uncovered": 2, "gaps": 0, "unknown_ids": 0,
        "cases_without_requirements": 0, "stale_reasons": 0}
    by_id = {requirement["id"]: requirement for requirement in report["requirements"]}
    assert by_id["RFC768-1"]["cases"] == sorted([CHECKSUM, DELIVERED])
    assert by_id["RFC768-1"]["status"] == "covered"
    assert by_id["RFC1122-4.1.3.4"] == {
        "id": "RFC1122-4.1.3.4", "rfc": "RFC1122", "level": "SHOULD",
        "summary": "Now with a reason.", "status": "uncovered", "cases": [],
        "uncovered": "needs a router"}


def test_a_case_naming_an_unknown_id_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suites = make_suites(tmp_path / "suites", {"test_coverage_unknown.py": UNKNOWN_ID})
    monkeypatch.setattr(conformance.run.layout, "SUITES_ROOT", suites)
    catalogue = write_catalogue(tmp_path, COMPLETE_CATALOGUE)
    result = invoke("coverage", "--catalogue", str(catalogue))
    assert result.exit_code == EXIT_FAIL, result.output
    assert ("RFC768-99  named by rfc768/test_coverage_unknown.py::"
            "test_names_an_unknown_requirement") in result.stdout
    assert "1 requirement IDs the catalogue lacks" in result.stderr
    report = json.loads(invoke("coverage", "--catalogue", str(catalogue), "--json").stdout)
    assert report["unknown_ids"] == [{"id": "RFC768-99", "cases": [
        "rfc768/test_coverage_unknown.py::test_names_an_unknown_requirement"]}]


def test_a_stale_reason_fails(tmp_path: Path, suites: Path) -> None:
    stale = COMPLETE_CATALOGUE.replace('summary = "UDP checksums are verified."',
                                       'summary = "UDP checksums."\nuncovered = "old"')
    result = invoke("coverage", "--catalogue", str(write_catalogue(tmp_path, stale)))
    assert result.exit_code == EXIT_FAIL, result.output
    assert "stale reason in the catalogue: old" in result.stdout
    assert "1 stale `uncovered` reasons" in result.stderr


def test_rfc_narrows_the_requirements(tmp_path: Path, suites: Path) -> None:
    catalogue = str(write_catalogue(tmp_path, CATALOGUE))
    result = invoke("coverage", "--catalogue", catalogue, "--rfc", "768", "--json")
    assert result.exit_code == EXIT_OK, result.output  # the RFC 1122 gap is out of scope
    assert [r["id"] for r in json.loads(result.stdout)["requirements"]] == [
        "RFC768-1", "RFC768-2"]
    result = invoke("coverage", "--catalogue", catalogue, "--rfc", "rfc1122")
    assert result.exit_code == EXIT_FAIL
    result = invoke("coverage", "--catalogue", catalogue, "--rfc", "RFC791")
    assert result.exit_code == EXIT_USAGE
    assert "no requirement of RFC791 (it has: RFC1122, RFC768, RFC9293)" in result.stderr


def test_k_counts_only_the_selected_cases(tmp_path: Path, suites: Path) -> None:
    catalogue = str(write_catalogue(tmp_path, COMPLETE_CATALOGUE))
    result = invoke("coverage", "--catalogue", catalogue, "-k", "checksum", "--json")
    assert result.exit_code == EXIT_FAIL  # RFC9293 3.9 and 3.10.7.4a lose their cases
    report = json.loads(result.stdout)
    assert report["summary"]["gaps"] == 2
    by_id = {requirement["id"]: requirement for requirement in report["requirements"]}
    assert by_id["RFC768-1"]["cases"] == [CHECKSUM]
    result = invoke("coverage", "--catalogue", catalogue, "-k", "no_such_case_anywhere")
    assert result.exit_code == EXIT_USAGE


def test_the_real_suites_and_catalogue() -> None:
    """Every requirement of the real catalogue is listed, and each has cases or a reason:
    the project's own catalogue has no gaps, no unknown IDs and no stale reasons."""
    result = invoke("coverage", "--json")
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["gaps"] == 0
    assert report["summary"]["requirements"] == len(Catalogue.load(
        conformance.run.layout.SUITES_ROOT / "requirements").requirements)


def test_build_coverage_counts_a_case_once_per_requirement() -> None:
    catalogue = Catalogue([Requirement("RFC768-1", "MUST", "x")])
    coverage = build_coverage(catalogue, [
        {"id": "a", "requirements": ["RFC768-1", "RFC768-1"]},
        {"id": "b", "requirements": []}])
    assert coverage.requirements[0].cases == ["a"]
    assert coverage.unmarked == ["b"]
    assert not coverage.complete


def test_requirement_order_is_numeric() -> None:
    assert sorted(["RFC9293-3.10", "RFC9293-3.9a", "RFC768-1", "RFC1122-4.2.2.13b",
                   "RFC1122-4.2.2.13a", "odd"], key=requirement_order) == [
        "RFC768-1", "RFC1122-4.2.2.13a", "RFC1122-4.2.2.13b", "RFC9293-3.9a",
        "RFC9293-3.10", "odd"]


def test_other_id_prefixes_group_after_the_rfcs() -> None:
    catalogue = Catalogue([Requirement("API-UDP-a", "MUST", "socket API"),
                           Requirement("RFC768-1", "MUST", "x")])
    cases = [{"id": "a", "requirements": ["API-UDP-a"]}]
    assert [r.id for r in build_coverage(catalogue, cases).requirements] == [
        "RFC768-1", "API-UDP-a"]
    only_api = build_coverage(catalogue, cases, ["api"])
    assert [(r.id, r.rfc, r.status) for r in only_api.requirements] == [
        ("API-UDP-a", "API", "covered")]
    assert only_api.complete
