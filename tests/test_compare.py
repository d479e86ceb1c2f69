"""compare: verdicts side by side, differences classified, JSON and Markdown written."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conformance.cli import cli
from conformance.report.compare import (
    compare_results,
    comparison_choices,
    is_choice,
    to_markdown,
)
from conformance.run.layout import target_labels
from tests.suite_runner import REPOSITORY

SUITE = "rfc1122/test_udp_icmp_errors.py"
HEARS_NOTHING = f"{SUITE}::test_unconnected_socket_hears_nothing_without_recverr"
WITH_RECVERR = f"{SUITE}::test_unconnected_socket_with_recverr_queues_the_error"


def results(target: str, *cases: tuple[str, str, dict[str, Any]], level: str = "MUST",
            choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"run": {"target": target},
            "cases": [{"id": case_id, "level": level, "verdict": verdict,
                       "observations": observations, "choices": list(choices)}
                      for case_id, verdict, observations in cases]}


def segment(**fields: Any) -> dict[str, Any]:
    """The key fields of a DUT's TCP segment, as `expect.N` records them."""
    return {"src": "192.0.2.1", "dst": "192.0.2.2", "df": True, "ip_len": 40, "ttl": 64,
            "sport": 5000, "dport": 43000, "flags": "A", "seq": 1, "ack": 1,
            "window": 64240, "options": [], "payload": 0, **fields}


def kinds(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str]:
    return {case.id: case.kind for case in compare_results(a, b).cases}


def test_each_kind_of_difference() -> None:
    a = results("ref", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "drop"}),
                ("broken", "pass", {}), ("na", "pass", {}), ("gone", "pass", {}),
                choices=("policy",))
    b = results("linux", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "reset"}),
                ("broken", "fail", {}), ("na", "n/a", {}), ("new", "pass", {}),
                choices=("policy",))
    assert kinds(a, b) == {"same": "same", "open": "allowed", "broken": "deviation",
                           "na": "differs", "gone": "only A", "new": "only B"}


def test_an_observation_the_case_names_a_choice_may_differ() -> None:
    a = results("ref", ("c", "pass", {"syn_while_full": "dropped"}), choices=("syn_while_full",))
    b = results("linux", ("c", "pass", {"syn_while_full": "reset"}), choices=("syn_while_full",))
    case = compare_results(a, b).cases[0]
    assert (case.kind, case.note) == ("allowed", "observations differ in choices the RFCs "
                                      "leave open")


def test_any_observation_of_a_may_may_differ() -> None:
    a = results("ref", ("m", "info", {"rst_in_time_wait": "closed"}), level="MAY")
    b = results("linux", ("m", "info", {"rst_in_time_wait": "ignored"}), level="MAY")
    assert compare_results(a, b).cases[0].note == "observations differ in a MAY"
    assert kinds(a, b) == {"m": "allowed"}


def test_a_difference_no_choice_explains_differs_under_the_same_pass() -> None:
    a = results("ref", ("f", "pass", {"second_flight_octets": 12000, "policy": "drop"}),
                choices=("policy",))
    b = results("linux", ("f", "pass", {"second_flight_octets": 20000, "policy": "reset"}),
                choices=("policy",))
    case = compare_results(a, b).cases[0]
    assert (case.kind, case.note) == ("differs", "no choice explains second_flight_octets")


def test_the_note_names_at_most_three_unexplained_observations() -> None:
    a = results("a", ("n", "pass", {f"o{i}": 1 for i in range(5)}))
    b = results("b", ("n", "pass", {f"o{i}": 2 for i in range(5)}))
    assert compare_results(a, b).cases[0].note == "no choice explains o0, o1, o2 and 2 more"


def test_segments_differing_only_in_relative_seq_or_window_are_not_the_same() -> None:
    a = results("a", ("s", "pass", {"expect.1": segment()}))
    for changed in (segment(seq=1001), segment(ack=2), segment(window=65535)):
        b = results("b", ("s", "pass", {"expect.1": changed}))
        assert kinds(a, b) == {"s": "differs"}, changed


def test_frames_may_differ_in_the_aspects_the_case_names() -> None:
    syn_a = segment(flags="S", ip_len=44, options=["MSS"], window=65535, ack=None)
    syn_b = segment(flags="S", ip_len=60, window=64240, ack=None,
                    options=["MSS", "SAckOK", "Timestamp", "NOP", "WScale"])
    def runs(*choices: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return (results("ref", ("t", "pass", {"expect.1": syn_a, "expect.2": segment()}),
                        choices=choices),
                results("linux", ("t", "pass", {"expect.1": syn_b,
                                                "expect.2": segment(flags="PA")}),
                        choices=choices))

    assert kinds(*runs("frame.psh", "frame.syn_options", "frame.window")) == {"t": "allowed"}
    assert compare_results(*runs("frame.psh")).cases[0].note == "no choice explains expect.1"
    assert compare_results(*runs("frame.syn_options", "frame.window")).cases[0].note == (
        "no choice explains expect.2")


def test_a_frame_choice_never_hides_other_fields_or_a_missing_frame() -> None:
    choices = ("frame.psh", "frame.syn_options", "frame.window")
    a = results("ref", ("t", "pass", {"expect.1": segment(flags="A", seq=1),
                                      "expect.2": segment()}), choices=choices)
    b = results("linux", ("t", "pass", {"expect.1": segment(flags="PA", seq=1001)}),
                choices=choices)
    assert compare_results(a, b).cases[0].note == "no choice explains expect.1, expect.2"


def test_timings_are_equal_within_the_tolerance() -> None:
    a = results("a", ("t", "pass", {"synack_intervals_s": [1.0, 2.0]}))
    close = results("b", ("t", "pass", {"synack_intervals_s": [1.1, 2.2]}))
    far = results("b", ("t", "pass", {"synack_intervals_s": [1.0, 3.0]}))
    assert kinds(a, close) == {"t": "same"}
    assert kinds(a, far) == {"t": "differs"}


def test_timings_nested_in_lists_and_dicts_compare_within_the_tolerance() -> None:
    a = results("a", ("t", "pass", {"rounds": [{"octets": 100, "after_s": 0.201}],
                                    "gaps_s": [[1.0, 2.0], {"first": 4.0}]}))
    close = results("b", ("t", "pass", {"rounds": [{"octets": 100, "after_s": 0.205}],
                                        "gaps_s": [[1.1, 2.2], {"first": 3.5}]}))
    far = results("b", ("t", "pass", {"rounds": [{"octets": 100, "after_s": 0.4}],
                                      "gaps_s": [[1.0, 2.0], {"first": 4.0}]}))
    octets = results("b", ("t", "pass", {"rounds": [{"octets": 110, "after_s": 0.201}],
                                         "gaps_s": [[1.0, 2.0], {"first": 4.0}]}))
    assert kinds(a, close) == {"t": "same"}
    assert compare_results(a, far).cases[0].differences == {
        "rounds": ([{"octets": 100, "after_s": 0.201}], [{"octets": 100, "after_s": 0.4}])}
    assert kinds(a, far) == {"t": "differs"}
    assert kinds(a, octets) == {"t": "differs"}  # only timings get the tolerance


def test_timings_within_the_resolution_are_equal_whatever_their_ratio() -> None:
    """Sub-millisecond timings differ by large ratios between two runs of one stack: the
    tester's scheduling, not the stack's. Beyond 50 ms the tolerance is relative again."""
    a = results("a", ("t", "pass", {"released_after_s": 0.0005, "lags_s": [0.003]}))
    noise = results("b", ("t", "pass", {"released_after_s": 0.002, "lags_s": [0.015]}))
    slower = results("b", ("t", "pass", {"released_after_s": 0.06, "lags_s": [0.003]}))
    assert kinds(a, noise) == {"t": "same"}
    assert compare_results(a, slower).cases[0].differences == {
        "released_after_s": (0.0005, 0.06)}


def test_markdown_lists_every_case_with_its_differences() -> None:
    a = results("ref", ("open", "info", {"policy": "drop"}), choices=("policy",))
    b = results("linux", ("open", "info", {"policy": "reset"}), choices=("policy",))
    markdown = to_markdown(compare_results(a, b))
    assert "# ref (A) against linux (B)" in markdown
    assert ('| open | MUST | info | info | allowed | observations differ in choices the RFCs '
            'leave open | `policy`: "drop" / "reset" |') in markdown


def test_a_may_checked_on_one_side_and_observed_on_the_other_is_allowed() -> None:
    a = results("ref", ("may", "pass", {"df": True}))
    b = results("linux", ("may", "info", {"df": False}))
    case = compare_results(a, b).cases[0]
    assert (case.kind, case.note) == (
        "allowed", "a MAY: checked on one side, observed (info) on the other")


def test_timings_beyond_the_tolerance_differ_and_said_so() -> None:
    a = results("a", ("t", "pass", {"time_wait_s": 60.0}))
    b = results("b", ("t", "pass", {"time_wait_s": 120.0}))
    case = compare_results(a, b).cases[0]
    assert (case.kind, case.note) == ("differs", "timings differ beyond the tolerance")


def test_both_failing_differently_is_no_allowed_difference() -> None:
    a = results("a", ("f", "fail", {"rst": "sent"}), ("g", "fail", {}))
    b = results("b", ("f", "fail", {"rst": "none"}), ("g", "error", {}))
    cases = {case.id: case for case in compare_results(a, b).cases}
    assert (cases["f"].kind, cases["f"].note) == ("differs", "both fails; observations differ")
    assert (cases["g"].kind, cases["g"].note) == ("deviation", "both fail: A fail, B error")


def test_a_deviation_names_the_failing_side() -> None:
    a = results("a", ("x", "pass", {}), ("y", "warn", {}))
    b = results("b", ("x", "fail", {}), ("y", "pass", {}))
    notes = {case.id: case.note for case in compare_results(a, b).cases}
    assert notes == {"x": "only B fails", "y": "only A warns"}


def test_markdown_puts_deviations_first_and_allowed_differences_apart() -> None:
    a = results("ref", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "drop"}),
                ("broken", "pass", {}), ("slow", "pass", {"rto_s": 1.0}),
                ("na", "pass", {}), ("gone", "pass", {}), choices=("policy",))
    b = results("linux", ("same", "pass", {"x": 1}), ("open", "info", {"policy": "reset"}),
                ("broken", "fail", {}), ("slow", "pass", {"rto_s": 3.0}),
                ("na", "n/a", {}), ("new", "pass", {}), choices=("policy",))
    markdown = to_markdown(compare_results(a, b))
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Deviations (1)", "## Other differences (2)",
                        "## Differences the RFCs allow (1)", "## Only in A (1)",
                        "## Only in B (1)", "## Same (1)"]
    assert "deviation: 1, differs: 2, allowed: 1, only A: 1, only B: 1, same: 1" in markdown
    deviations = markdown.split("## Deviations")[1].split("## ")[0]
    assert "| broken | MUST | pass | fail | deviation | only B fails |" in deviations
    allowed = markdown.split("## Differences the RFCs allow")[1].split("## ")[0]
    assert "| open |" in allowed
    assert "| broken |" not in allowed
    others = markdown.split("## Other differences")[1].split("## ")[0]
    assert "| slow | MUST | pass | pass | differs | timings differ beyond the tolerance" in others


def test_markdown_cells_keep_the_table_intact() -> None:
    a = results("a", ("p[x|y]", "info", {"o": "a|b"}))
    b = results("b", ("p[x|y]", "info", {"o": "c"}))
    row = next(line for line in to_markdown(compare_results(a, b)).splitlines()
               if line.startswith("| p["))
    assert row.count("|") - row.count("\\|") == 8


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


def test_targets_are_checked_before_anything_runs(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(cli, ["compare", "--targets", "linux,nosuchstack",
                                       "--out", str(tmp_path / "run")])
    assert outcome.exit_code == 2
    assert "unknown target 'nosuchstack' (known: " in outcome.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--targets", "linux"], "want two targets"),
    (["--targets", "linux,linux,linux"], "want two targets"),
    (["--targets", "linux,"], "want two targets"),
    ([], "needs two runs (RUN_A RUN_B) or --targets A,B"),
    (["--targets", "linux,linux", "RUN"], "either RUN_A RUN_B or --targets"),
    (["-k", "x", "A", "B"], "-k: only with --targets"),
    (["--no-wireshark", "A", "B"], "--no-wireshark: only with --targets"),
])
def test_compare_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              args: list[str], says: str) -> None:
    for name in ("A", "B", "RUN"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(cli, ["compare", *args])
    assert outcome.exit_code == 2
    assert says in outcome.stderr


def test_a_target_named_twice_gets_a_second_directory() -> None:
    assert target_labels(["linux", "linux"]) == ["linux", "linux-2"]
    assert target_labels(["linux", "ref"]) == ["linux", "ref"]


def test_a_directory_without_results_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    outcome = CliRunner().invoke(cli, ["compare", str(tmp_path / "empty"), str(tmp_path / "empty")])
    assert outcome.exit_code == 2


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_compare_targets_runs_both_and_compares(tmp_path: Path) -> None:
    """linux against linux: two runs, one directory each, every case the same."""
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "compare", "--targets", "linux,linux",
         "-k", "unconnected_socket", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    for label in ("linux", "linux-2"):
        results = json.loads((out / label / "results.json").read_text())
        assert results["run"]["target"] == "linux"
        assert {case["id"] for case in results["cases"]} == {HEARS_NOTHING, WITH_RECVERR}
        for case in results["cases"]:
            assert (out / label / case["evidence"]).stat().st_size > 0
    assert sorted(path.name for path in out.iterdir()) == [
        "compare.json", "compare.md", "linux", "linux-2", "report"]  # no staging directory
    report = (out / "report" / "compare.html").read_text()
    assert "linux (A) against linux-2 (B)" in report
    written = json.loads((out / "compare.json").read_text())
    assert (written["a"], written["b"]) == ("linux", "linux-2")
    assert {case["id"]: case["kind"] for case in written["cases"]} == {
        HEARS_NOTHING: "same", WITH_RECVERR: "same"}
    assert "# linux (A) against linux-2 (B)" in (out / "compare.md").read_text()
    assert "same: 2" in completed.stdout
    assert f"Written: {out / 'compare.json'}, {out / 'compare.md'}" in completed.stdout


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
@pytest.mark.parametrize("target", ["ref", "linux", "lwip", "gvisor"])
def test_a_stack_compared_with_itself_is_the_same_in_every_case(
    tmp_path: Path, target: str
) -> None:
    """Two default runs of the whole catalogue on one target: every case has the same
    verdict, and the same observations (timings at the resolution judged, ports the stack
    picks, streams and reads the DUT's timing splits, ISN distances) except where the case
    names the difference a choice the RFCs leave open (the window an ACK offers follows
    when the application read). So a deviation or an unexplained difference between two
    stacks is never noise; noise in a choice moves a case between `same` and `allowed`.
    Without Wireshark's reads, which compare leaves out (the reference captures' test and
    the runs of ref and linux as they are judge those), and with the 4 workers of a run
    with them: with 8, beside the other tests, an agent's read came 35 ms late once, and
    with it Linux's ACK of a pair of full segments (which it sends when the application
    reads), a warn of the tester's making."""
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "compare", "--targets",
         f"{target},{target}", "--no-wireshark", "--workers", "4", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    written = json.loads((out / "compare.json").read_text())
    cases = {case["id"]: case
             for case in json.loads((out / target / "results.json").read_text())["cases"]}
    assert len(cases) > 200
    assert json.loads((out / target / "results.json").read_text())["run"]["wireshark"] is False
    not_same = {}
    for compared in written["cases"]:
        if compared["kind"] == "same":
            continue
        choices = comparison_choices(cases[compared["id"]])
        unexplained = {name: values for name, values in compared["differences"].items()
                       if not is_choice(name, values[0], values[1], choices)}
        if compared["verdict_a"] != compared["verdict_b"] or unexplained:
            not_same[compared["id"]] = (compared["verdict_a"], compared["verdict_b"],
                                        compared["note"], unexplained)
    assert not_same == {}


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_compare_targets_propagates_a_run_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "compare", "--targets", "linux,linux",
         "-k", "no_case_is_named_like_this", "--out", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "no case matches -k 'no_case_is_named_like_this'" in completed.stderr \
        or "unknown requirement" in completed.stderr  # suites and catalogue out of step
    assert completed.stdout.count("== linux") == 1  # the second run never started
    assert not (tmp_path / "run" / "compare.json").exists()


def test_frames_may_differ_in_ttl_and_df_in_every_case() -> None:
    a = results("linux", ("t", "pass", {"expect.1": segment(ttl=64, df=True)}))
    b = results("lwip", ("t", "pass", {"expect.1": segment(ttl=255, df=False)}))
    assert kinds(a, b) == {"t": "allowed"}
    c = results("lwip", ("t", "pass", {"expect.1": segment(ttl=255, df=False, seq=1001)}))
    assert kinds(a, c) == {"t": "differs"}
