"""Verdicts by level, exit status, expectation files, the requirement catalogue."""

from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.expectations import judge_expectation, load_expectations
from conformance.requirements.catalogue import Catalogue, default_catalogue_path
from conformance.verdicts import Verdict, exit_status, verdict_for_level


@pytest.mark.parametrize(("level", "held", "verdict"), [
    ("MUST", True, Verdict.PASS), ("MUST", False, Verdict.FAIL),
    ("MUST NOT", False, Verdict.FAIL), ("SHOULD", False, Verdict.WARN),
    ("SHOULD NOT", False, Verdict.WARN), ("MAY", True, Verdict.INFO),
    ("MAY", False, Verdict.INFO),
])
def test_verdict_follows_the_level(level: str, held: bool, verdict: Verdict) -> None:
    assert verdict_for_level(level, held=held) == verdict


def test_exit_status() -> None:
    assert exit_status([Verdict.PASS, Verdict.WARN, Verdict.INFO, Verdict.NOT_APPLICABLE]) == 0
    assert exit_status([Verdict.PASS, Verdict.FAIL]) == 1
    assert exit_status([Verdict.ERROR]) == 1
    assert exit_status([Verdict.PASS], unexpected=1) == 1


def test_expectations(tmp_path: Path) -> None:
    path = tmp_path / "linux.toml"
    path.write_text('[[deviation]]\ncase = "a.py::t"\nverdict = "fail"\nreason = "known"\n')
    deviations = load_expectations(path)
    assert judge_expectation("a.py::t", Verdict.FAIL, deviations)[0] == "expected"
    state, note = judge_expectation("a.py::t", Verdict.PASS, deviations)
    assert state == "unexpected" and "update the file" in note
    assert judge_expectation("b.py::t", Verdict.FAIL, deviations) == (None, "")
    path.write_text('[[deviation]]\ncase = "a.py::t"\nverdict = "broken"\nreason = "x"\n')
    with pytest.raises(UsageError):
        load_expectations(path)


def test_the_catalogue_loads_and_judges_by_the_strictest_level() -> None:
    catalogue = Catalogue.load(default_catalogue_path())
    assert catalogue.level_of(["RFC1191-2", "RFC1191-3a"]) == "MUST"
    assert catalogue.level_of(["RFC1191-2"]) == "MAY"
    with pytest.raises(UsageError):
        catalogue.get("RFC0000-1")


def test_a_catalogue_with_duplicates_or_bad_levels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    entry = '[[requirement]]\nid = "X-1"\nlevel = "MUST"\nsummary = "s"\n'
    path.write_text(entry * 2)
    with pytest.raises(UsageError, match="duplicate"):
        Catalogue.load(path)
    path.write_text(entry.replace("MUST", "OUGHT"))
    with pytest.raises(UsageError, match="level"):
        Catalogue.load(path)
