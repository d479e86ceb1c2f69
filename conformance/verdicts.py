"""Verdicts: how a case outcome and the level of its requirements become a judgement."""

from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # a MUST or MUST NOT is broken
    WARN = "warn"  # a SHOULD or SHOULD NOT is broken
    INFO = "info"  # a MAY, or a choice the RFCs leave open: observed, never failing
    NOT_APPLICABLE = "n/a"  # the target lacks the facility
    ERROR = "error"  # the harness or the environment failed; never blamed on the DUT


def verdict_for_level(level: str, *, held: bool) -> Verdict:
    """The verdict of a case whose checks held (or not) for a requirement of `level`."""
    if level == "MAY":
        return Verdict.INFO
    if held:
        return Verdict.PASS
    return Verdict.FAIL if level.startswith("MUST") else Verdict.WARN


EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


def exit_status(verdicts: list[Verdict], *, unexpected: int = 0) -> int:
    """0 when no fail and no error; 1 when a fail (or an error, or an expectation that no
    longer holds). Expected deviations are left out of `verdicts` by the caller."""
    if Verdict.FAIL in verdicts or Verdict.ERROR in verdicts or unexpected:
        return EXIT_FAIL
    return EXIT_OK


def exit_status_of(cases: list[dict[str, Any]]) -> int:
    """exit_status of a run's results.json cases: expected deviations left out, a case
    whose expectation no longer holds counted."""
    counted = [Verdict(case["verdict"]) for case in cases if case["expectation"] != "expected"]
    unexpected = sum(case["expectation"] == "unexpected" for case in cases)
    return exit_status(counted, unexpected=unexpected)
