"""Case durations from the reference evidence, and the longest-first order of a parallel
run."""

import json
from pathlib import Path

from conformance.run.durations import REFERENCE_ROOT, longest_first, reference_durations


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
