"""scripts/variations.py: what counts as worse, and a sample run under ECN negotiation.

The sample is the SYN cases under net.ipv4.tcp_ecn=1: Linux then opens with an ECN-setup
SYN (SYN with ECE and CWR, RFC 3168 6.1.1), which a conformant tester must accept where
it asks for a SYN; no verdict may get worse than with the kernel's defaults.
"""

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.suite_runner import REPOSITORY, privileged

SCRIPT = REPOSITORY / "scripts" / "variations.py"
SYN_CASES = ["test_active_open", "test_connect_refused_by_rst", "test_syn_carries_an_mss_option"]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("variations", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["variations"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


variations = load_script()


def results(**verdicts: str) -> dict[str, Any]:
    cases = [{"id": f"suite.py::{name}", "verdict": verdict, "message": f"{name} said\nmore",
              "evidence": f"{name}.pcapng"} for name, verdict in verdicts.items()]
    run = {"verdicts": dict(Counter(verdicts.values())), "kernel_release": "6.18"}
    return {"run": run, "cases": cases}


@pytest.mark.parametrize(("default", "new", "worse"), [
    ("pass", "fail", True), ("pass", "warn", True), ("pass", "error", True),
    ("warn", "fail", True), ("n/a", "error", True), ("info", "warn", True),
    ("pass", "info", False), ("pass", "n/a", False), ("fail", "pass", False),
    ("n/a", "warn", False), ("warn", "info", False), ("pass", "missing", True),
])
def test_worse_is_judged_from_the_default_verdict(default: str, new: str, worse: bool) -> None:
    found = variations.changes("ecn", results(case=default),
                               results() if new == "missing" else results(case=new))
    assert [change.worse for change in found] == [worse]


def test_unchanged_verdicts_are_no_change_and_the_message_is_its_first_line() -> None:
    found = variations.changes("ecn", results(same="pass", changed="pass"),
                               results(same="pass", changed="fail"))
    assert [(change.case, change.message, change.evidence) for change in found] == [
        ("suite.py::changed", "changed said", "ecn/linux/changed.pcapng")]


def test_the_table_lists_worse_cases_apart_from_other_changes() -> None:
    found = variations.changes("ecn", results(a="pass", b="pass"), results(a="fail", b="info"))
    table = variations.markdown([variations.CONFIGURATIONS["ecn"]], found,
                                {"ecn": {"fail": 1, "info": 1}}, "command", {})
    worse, other = table.split("## Other changes")
    assert "`suite.py::a` | pass -> fail |  | a said |" in worse and "suite.py::b" not in worse
    assert "`suite.py::b` | pass -> info |" in other


def test_a_worse_verdict_not_seen_again_on_the_recheck_is_marked_flaky() -> None:
    found = variations.changes("ecn", results(a="pass", b="pass"), results(a="fail", b="fail"))
    again = [replace(found[0], recheck="pass"), replace(found[1], recheck="warn")]
    assert [change.reproduced for change in again] == [False, True]
    table = variations.markdown([variations.CONFIGURATIONS["ecn"]], again, {}, "command", {})
    assert "| pass -> fail | pass (flaky) | a said |" in table
    assert "| pass -> fail | warn | b said |" in table
    assert "| no results | 2 (1 flaky) |" in table


def test_a_default_failure_that_passes_when_run_again_is_compared_as_a_pass() -> None:
    default = results(flaky="fail", known="fail", steady="fail")
    baseline = variations.settle(default, {"suite.py::flaky": "pass",
                                           "suite.py::steady": "fail"})
    found = variations.changes("ecn", baseline, results(flaky="fail", known="fail",
                                                        steady="fail"))
    assert [(change.case, change.default, change.worse) for change in found] == [
        ("suite.py::flaky", "pass", True)]
    table = variations.markdown([], found, {}, "command", {"suite.py::flaky": ("fail", "pass")})
    assert "* `suite.py::flaky`: fail -> pass" in table


def test_a_run_compares_with_the_settled_default_and_rechecks_what_got_worse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = {"default": results(flaky="fail", steady="pass"),
            "default-recheck": results(flaky="pass"),
            "ecn": results(flaky="fail", steady="warn"), "ecn-recheck": results(flaky="fail")}
    asked: list[tuple[str, str | None]] = []

    def run(name: str, sysctls: tuple[str, ...], out: Path, keyword: str | None,
            workers: int) -> dict[str, Any]:
        asked.append((name, keyword))
        return runs[name]

    monkeypatch.setattr(variations, "run_configuration", run)
    assert variations.main(["--configs", "ecn", "--out", str(tmp_path)]) == 1
    assert asked == [("default", None), ("ecn", None), ("default-recheck", "flaky"),
                     ("ecn-recheck", "flaky or steady")]
    report = json.loads((tmp_path / "variations.json").read_text())
    assert report["default_settled_by_recheck"] == {"suite.py::flaky": ["fail", "pass"]}
    assert [(entry["case"], entry["default"], entry["verdict"], entry["recheck"],
             entry["reproduced"]) for entry in report["worse"]] == [
        ("suite.py::flaky", "pass", "fail", "fail", True),
        ("suite.py::steady", "pass", "warn", "missing", False)]


def test_every_configuration_names_sysctls_this_kernel_has() -> None:
    for configuration in variations.CONFIGURATIONS.values():
        for assignment in configuration.sysctls:
            assert variations.is_known_sysctl(assignment), (configuration.name, assignment)


def needs_root(test: Callable[..., None]) -> Callable[..., None]:
    for mark in privileged:
        test = mark(test)
    return test


@needs_root
def test_syn_cases_are_no_worse_with_ecn_negotiated(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--configs", "ecn", "--workers", "2",
         "-k", " or ".join(SYN_CASES), "--out", str(tmp_path)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "variations.json").read_text())
    assert report["worse"] == []
    ecn = json.loads((tmp_path / "ecn" / "linux" / "results.json").read_text())
    assert ecn["run"]["sysctls_applied"] == {"net.ipv4.tcp_ecn": "1"}
    cases = {entry["id"].rpartition("::")[2]: entry for entry in ecn["cases"]}
    assert set(SYN_CASES) <= cases.keys()
    # The configuration took effect: the SYN the case judged was an ECN-setup SYN.
    assert cases["test_active_open"]["observations"]["expect.1"]["flags"] == "SEC"
