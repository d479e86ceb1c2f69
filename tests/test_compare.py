"""compare: verdicts side by side, differences classified, JSON and Markdown written."""

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from conformance.cli import cli
from conformance.report.compare import compare_results, to_markdown
from tests.suite_runner import REPOSITORY


def results(target: str, *cases: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {"run": {"target": target},
            "cases": [{"id": case_id, "level": "MUST", "verdict": verdict,
                       "observations": observations} for case_id, verdict, observations in cases]}


def kinds(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str]:
    return {case.id: case.kind for case in compare_results(a, b).cases}


def test_each_kind_of_difference() -> None:
    a = results("ref", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "drop"}),
                ("broken", "pass", {}), ("na", "pass", {}), ("gone", "pass", {}))
    b = results("linux", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "reset"}),
                ("broken", "fail", {}), ("na", "n/a", {}), ("new", "pass", {}))
    assert kinds(a, b) == {"same": "same", "open": "allowed", "broken": "deviation",
                           "na": "differs", "gone": "only A", "new": "only B"}


def test_timings_are_equal_within_the_tolerance() -> None:
    a = results("a", ("t", "pass", {"synack_intervals_s": [1.0, 2.0]}))
    close = results("b", ("t", "pass", {"synack_intervals_s": [1.1, 2.2]}))
    far = results("b", ("t", "pass", {"synack_intervals_s": [1.0, 3.0]}))
    assert kinds(a, close) == {"t": "same"}
    assert kinds(a, far) == {"t": "allowed"}


def test_markdown_lists_every_case_with_its_differences() -> None:
    a = results("ref", ("open", "info", {"policy": "drop"}))
    b = results("linux", ("open", "info", {"policy": "reset"}))
    markdown = to_markdown(compare_results(a, b))
    assert "# ref (A) against linux (B)" in markdown
    assert '| open | MUST | info | info | allowed | `policy`: "drop" / "reset" |' in markdown


def test_the_cli_compares_two_runs_and_writes_both_reports(tmp_path: Path) -> None:
    reference = REPOSITORY / "pcaps" / "reference" / "linux" / "results.json"
    original = json.loads(reference.read_text())
    changed = json.loads(reference.read_text())
    rst_case = next(case for case in changed["cases"] if "rst_in_time_wait" in case["id"])
    rst_case["observations"]["rst_in_time_wait"] = "ignored"
    for name, document in (("a", original), ("b", changed)):
        (tmp_path / name / "linux").mkdir(parents=True)
        (tmp_path / name / "linux" / "results.json").write_text(json.dumps(document))
    outcome = CliRunner().invoke(cli, ["compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                       "--out", str(tmp_path / "cmp")])
    assert outcome.exit_code == 0, outcome.output
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    by_kind = {case["id"]: case["kind"] for case in written["cases"]}
    assert by_kind[rst_case["id"]] == "allowed"
    assert sum(kind == "same" for kind in by_kind.values()) == len(by_kind) - 1
    assert "rst_in_time_wait" in (tmp_path / "cmp" / "compare.md").read_text()


def test_a_directory_without_results_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    outcome = CliRunner().invoke(cli, ["compare", str(tmp_path / "empty"), str(tmp_path / "empty")])
    assert outcome.exit_code == 2
