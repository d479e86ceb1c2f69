"""The whole catalogue against a reference stack that hears nothing, and one that answers
every frame 0.6 s late (tests/ref_variants.py): a tester that judges fairly fails the
first on every case and judges the second exactly as the normal stack, except where a
case judges how soon the DUT answers, and then says that it answered late.

Each run is the default catalogue (no slow cases) in one child run of the suites.
"""

from pathlib import Path
from typing import Any

import pytest

from tests.suite_runner import REPOSITORY, privileged, run_suites

pytestmark = privileged

VARIANTS = REPOSITORY / "tests" / "ref_variants.py"


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in results["cases"]}


@pytest.fixture(scope="module")
def normal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return verdicts(run_suites(tmp_path_factory.mktemp("normal"), "-n", "2", target="ref"))


def test_no_case_passes_a_stack_that_hears_nothing(tmp_path: Path) -> None:
    results = verdicts(run_suites(tmp_path, "-n", "2", "--ref-patch", f"{VARIANTS}:mute",
                                  target="ref"))
    praised = {case_id: (entry["verdict"], entry["message"][:200])
               for case_id, entry in results.items() if entry["verdict"] in ("pass", "info")}
    assert results and not praised, praised


def test_a_late_stack_is_judged_as_the_normal_one(
    tmp_path: Path, normal: dict[str, dict[str, Any]]
) -> None:
    results = verdicts(run_suites(tmp_path, "-n", "2", "--ref-patch", f"{VARIANTS}:late",
                                  target="ref"))
    assert set(results) == set(normal)
    # A case judging how soon the DUT answers may change its verdict, and must say why.
    misjudged = {
        case_id: (normal[case_id]["verdict"], entry["verdict"], entry["message"][:300])
        for case_id, entry in results.items()
        if entry["verdict"] != normal[case_id]["verdict"]
        and "late" not in entry["message"].lower()
    }
    assert not misjudged, misjudged
