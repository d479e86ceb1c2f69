"""Case durations from the reference evidence, and the longest-first order of a parallel
run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.run.durations import REFERENCE_ROOT, longest_first, reference_durations
from tests.suite_runner import REPOSITORY, SUITES, case, run_suites


def write_reference(root: Path, target: str, durations: dict[str, float]) -> None:
    (root / target).mkdir(parents=True)
    cases = [{"id": case, "duration_s": seconds} for case, seconds in durations.items()]
    (root / target / "results.json").write_text(json.dumps({"cases": cases}))


def test_a_targets_reference_durations_are_read(tmp_path: Path) -> None:
    write_reference(tmp_path, "ref", {"a": 1.0})
    write_reference(tmp_path, "lwip", {"a": 3.0, "b": 0.5})
    assert reference_durations("lwip", tmp_path) == {"a": 3.0, "b": 0.5}


def test_a_target_without_reference_takes_the_ref_targets(tmp_path: Path) -> None:
    write_reference(tmp_path, "ref", {"a": 1.0})
    assert reference_durations("external", tmp_path) == {"a": 1.0}


def test_no_reference_at_all_gives_no_durations(tmp_path: Path) -> None:
    assert reference_durations("ref", tmp_path) == {}
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "results.json").write_text("not json")
    assert reference_durations("ref", tmp_path) == {}


def test_longest_cases_come_first_and_unknown_ones_last_in_their_order() -> None:
    cases = ["short", "new-1", "long", "middle", "new-2"]
    durations = {"short": 0.1, "long": 7.5, "middle": 1.0}
    assert [cases[i] for i in longest_first(cases, durations)] == [
        "long", "middle", "short", "new-1", "new-2"]


def test_the_committed_reference_covers_every_default_target() -> None:
    for target in ("ref", "linux", "lwip", "gvisor"):
        durations = reference_durations(target)
        assert len(durations) >= 200 and max(durations.values()) > 1.0, target
    assert REFERENCE_ROOT.is_dir()


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_a_case_records_the_share_of_its_lab_in_its_duration(tmp_path: Path) -> None:
    # The initial-RTO case waits about a second on the DUT's timer: its lab takes less.
    results = run_suites(tmp_path, "-k", "test_initial_rto_is_about_one_second")
    entry = case(results, "test_initial_rto_is_about_one_second")
    assert 0 < entry["lab_s"] < entry["duration_s"] - 0.9, entry


def test_a_parallel_run_hands_out_the_longest_cases_first(tmp_path: Path) -> None:
    # In a pytest-xdist worker the plugin orders the collection by reference durations.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITES), "--target", "ref", "--collect-only",
         "-q", "-p", "no:cacheprovider", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPOSITORY, check=True,
        env={**os.environ, "PYTEST_XDIST_WORKER": "gw0"})
    collected = [line.split("suites/", 1)[1] for line in done.stdout.splitlines()
                 if "::" in line]
    durations = reference_durations("ref")
    known = [durations[case_id] for case_id in collected if case_id in durations]
    assert known and known == sorted(known, reverse=True)
