"""`--suite DIR`: a user's own cases with their own requirement catalogue, written with
what `conformance` exports (examples/my_suite, the README's worked example)."""

import json
import os
from pathlib import Path

import pytest

from tests.test_cli import run_conformance

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_suite"
CASES = {
    "my_suite/test_udp_echo.py::test_a_datagram_comes_back_with_the_same_data":
        ("EXAMPLE-UDP-ECHO-1", "MUST"),
    "my_suite/test_udp_echo.py::test_a_closed_port_does_not_echo":
        ("EXAMPLE-UDP-ECHO-2", "MUST NOT"),
}


def test_list_shows_the_suites_cases_with_their_own_requirements(tmp_path: Path) -> None:
    listed = run_conformance("list", "--suite", str(EXAMPLE), "-k", "udp_echo", "--json",
                             cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    cases = {case["id"]: (case["requirements"], case["level"])
             for case in json.loads(listed.stdout)}
    assert cases == {case: ([requirement], level)
                     for case, (requirement, level) in CASES.items()}


def test_a_suite_without_a_catalogue_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "test_x.py").write_text("def test_x() -> None:\n    pass\n")
    listed = run_conformance("list", "--suite", str(tmp_path / "bare"), cwd=tmp_path)
    assert listed.returncode == 2 and "no requirements.toml" in listed.stderr


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_the_worked_example_runs_on_linux(tmp_path: Path) -> None:
    run = run_conformance("run", "--target", "linux", "--suite", str(EXAMPLE), "-k",
                          "udp_echo", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((tmp_path / "run" / "linux" / "results.json").read_text())
    assert {case["id"]: case["verdict"] for case in results["cases"]} == {
        case: "pass" for case in CASES}
    assert all(case["level"] == CASES[case["id"]][1] for case in results["cases"])
