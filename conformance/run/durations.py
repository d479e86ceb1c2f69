"""How long each case takes, from the committed reference evidence: the order that keeps
parallel workers busy (the longest cases first, so the run ends near the longest case,
not after a long one started last)."""

import json
from pathlib import Path

REFERENCE_ROOT = Path(__file__).resolve().parents[2] / "pcaps" / "reference"
FALLBACK_TARGET = "ref"


def reference_durations(target: str, root: Path = REFERENCE_ROOT) -> dict[str, float]:
    """Each case's duration in the target's reference run (the ref target's for a target
    with none); empty when there is no reference evidence (an installed package)."""
    for name in (target, FALLBACK_TARGET):
        path = root / name / "results.json"
        try:
            cases = json.loads(path.read_text())["cases"]
        except (OSError, ValueError, KeyError):
            continue
        return {case["id"]: float(case.get("duration_s") or 0.0) for case in cases}
    return {}


def longest_first(case_ids: list[str], durations: dict[str, float]) -> list[int]:
    """The positions of `case_ids` in the order to run them: longest first, a case with no
    known duration after the known ones, ties in their given order."""
    unknown = -1.0
    return sorted(range(len(case_ids)), key=lambda index: -durations.get(case_ids[index],
                                                                          unknown))
