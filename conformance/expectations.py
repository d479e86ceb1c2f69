"""Per-target expectation files: known deviations, each with its reason.

`suites/expectations/<target>.toml`:

    [[deviation]]
    case = "rfc1191/test_pmtu.py::test_datagrams_carry_df"
    verdict = "fail"
    reason = "why this target deviates"

A case whose verdict is the expected one does not count against the run. A case listed
here whose verdict is anything else (it passes now, say) is reported as unexpected, so
the file stays true.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import UsageError
from conformance.verdicts import Verdict


@dataclass(frozen=True)
class Deviation:
    case: str
    verdict: Verdict
    reason: str


def load_expectations(path: Path | None) -> dict[str, Deviation]:
    if path is None or not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
        deviations = [
            Deviation(entry["case"], Verdict(entry["verdict"]), entry["reason"])
            for entry in data.get("deviation", [])
        ]
    except (tomllib.TOMLDecodeError, KeyError, ValueError) as error:
        raise UsageError(f"{path}: not a valid expectations file: {error}") from error
    return {deviation.case: deviation for deviation in deviations}


def judge_expectation(case: str, verdict: Verdict,
                      deviations: dict[str, Deviation]) -> tuple[str | None, str]:
    """("expected" | "unexpected" | None, explanation) for a case's verdict."""
    deviation = deviations.get(case)
    if deviation is None:
        return None, ""
    if verdict == deviation.verdict:
        return "expected", f"known deviation: {deviation.reason}"
    return "unexpected", (
        f"the expectations file says {deviation.verdict} ({deviation.reason}), "
        f"but the verdict is {verdict}: update the file"
    )
