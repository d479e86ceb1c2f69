"""Compare two runs case by case: verdicts, and the observations that differ.

Each case falls in one of these kinds:

* `same`: same verdict, same observations (timings within TIMING_TOLERANCE);
* `allowed`: a difference the RFCs allow, never a deviation: pass on one side and info
  on the other (a MAY checked and observed), or the same passing verdict (pass, info,
  n/a) where every observation that differs is a choice: the case checks a MAY, or it
  names the observation as a choice the RFCs leave open (`observe(..., choice=True)`),
  or the observation is a frame that differs only in aspects the case names with
  `@choices("frame.psh", ...)` or in those open in every case (TTL and DF,
  `EVERY_CASE_CHOICES`);
* `deviation`: the verdicts differ and one of them is fail, warn or error;
* `differs`: any other difference: the same passing verdict with an observation that no
  choice explains (a larger flight, a timing beyond the tolerance, another segment),
  the verdicts differ otherwise (pass against n/a, say), or both sides fail, warn or err
  alike but observe different things;
* `only A` / `only B`: the case ran in one of the runs only.

Each comparison also carries a note in words (which side fails, which observations no
choice explains). A timing is a value whose name ends in `_s`, at the top of the
observations or as a key anywhere inside one; every number in it, in lists and dicts
too, is equal to the other within TIMING_TOLERANCE, or within TIMING_RESOLUTION_S
(50 ms) of it.
"""

import json
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.evidence.wireshark import WIRESHARK_OBSERVATIONS
from conformance.testbench.observed import EVERY_CASE_CHOICES, without_choices

TIMING_TOLERANCE = 0.25  # relative
# Differences below this are the tester's own scheduling (two cores, parallel labs: up to
# 12 ms seen between two runs of one stack). A case whose bound lies closer (10 ms for an
# ACK "at once") decides its verdict by it, and a verdict that changes is never `same`.
TIMING_RESOLUTION_S = 0.05
FAILING = ("fail", "warn", "error")
OPEN_CHOICE = frozenset({"pass", "info"})  # a MAY: observed (info) or checked (pass)
FRAME = re.compile(r"expect\.\d+")  # the key fields of a frame the DUT sent
# The Markdown report's sections, in order: what needs a look first.
SECTIONS = (
    ("deviation", "Deviations",
     "One side fails, warns or errs where the other does not."),
    ("differs", "Other differences",
     "Both sides pass but observe something no choice of the case explains (frames, "
     "sizes, timings beyond the tolerance); verdicts that differ without a failure (pass "
     "against n/a, say); or both sides failing alike but observing different things."),
    ("allowed", "Differences the RFCs allow",
     "Both sides meet what the case judges and differ only where the RFCs leave the "
     "choice open: a MAY, or an observation or frame aspect the case names as a choice."),
    ("only A", "Only in A", "The case ran in A only."),
    ("only B", "Only in B", "The case ran in B only."),
    ("same", "Same", "Same verdict, same observations (timings within the tolerance: "
     "25 %, or 50 ms)."),
)


@dataclass(frozen=True)
class CaseComparison:
    id: str
    level: str | None
    verdict_a: str | None
    verdict_b: str | None
    kind: str
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    label_a: str
    label_b: str
    cases: list[CaseComparison]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for case in self.cases:
            counts[case.kind] = counts.get(case.kind, 0) + 1
        return counts


def agree(a: Any, b: Any, *, timing: bool = False) -> bool:
    """Whether two observed values are the same; a timing's numbers (a value under a
    name ending in `_s`, at any depth) within the tolerance."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            agree(a[key], b[key], timing=timing or is_timing(str(key))) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            agree(x, y, timing=timing) for x, y in zip(a, b, strict=True))
    if timing and _number(a) and _number(b):
        return bool(abs(a - b) <= max(TIMING_TOLERANCE * max(abs(a), abs(b)),
                                      TIMING_RESOLUTION_S))
    return bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def observation_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The observations that differ, Wireshark's view left out: its frame numbers and TCP
    analysis follow timing, and a frame it rejects already shows in the verdict (warn)."""
    differences = {}
    for name in sorted(set(a) | set(b)):
        if name.startswith(WIRESHARK_OBSERVATIONS):
            continue
        left, right = a.get(name), b.get(name)
        if not agree(left, right, timing=is_timing(name)):
            differences[name] = (left, right)
    return differences


def is_timing(name: str) -> bool:
    return name.endswith("_s")


def is_choice(name: str, left: Any, right: Any, choices: Collection[str]) -> bool:
    """Whether the case names this difference as a choice the RFCs leave open: the
    observation itself, or every aspect in which two frames differ."""
    if name in choices:
        return True
    return (FRAME.fullmatch(name) is not None and isinstance(left, dict)
            and isinstance(right, dict)
            and without_choices(left, list(choices)) == without_choices(right, list(choices)))


def classify(verdict_a: str, verdict_b: str, differences: dict[str, tuple[Any, Any]], *,
             level: str | None = None, choices: Collection[str] = ()) -> tuple[str, str]:
    """The kind of difference between two runs of one case, and a note in words."""
    if verdict_a != verdict_b:
        if verdict_a in FAILING or verdict_b in FAILING:
            if verdict_a in FAILING and verdict_b in FAILING:
                return "deviation", f"both fail: A {verdict_a}, B {verdict_b}"
            side, verdict = ("A", verdict_a) if verdict_a in FAILING else ("B", verdict_b)
            return "deviation", f"only {side} {_verb(verdict)}"
        if {verdict_a, verdict_b} <= OPEN_CHOICE:
            return "allowed", "a MAY: checked on one side, observed (info) on the other"
        return "differs", f"verdicts differ: {verdict_a} / {verdict_b}"
    if not differences:
        return "same", ""
    if verdict_a in FAILING:
        return "differs", f"both {_verb(verdict_a)}; observations differ"
    if level == "MAY":
        return "allowed", "observations differ in a MAY"
    unexplained = [name for name, (left, right) in differences.items()
                   if not is_choice(name, left, right, choices)]
    if not unexplained:
        return "allowed", "observations differ in choices the RFCs leave open"
    if all(is_timing(name) for name in unexplained):
        return "differs", "timings differ beyond the tolerance"
    shown = ", ".join(unexplained[:3]) + (f" and {len(unexplained) - 3} more"
                                          if len(unexplained) > 3 else "")
    return "differs", f"no choice explains {shown}"


def _verb(verdict: str) -> str:
    return {"fail": "fails", "warn": "warns", "error": "errs"}.get(verdict, verdict)


def comparison_choices(*cases: dict[str, Any]) -> set[str]:
    """What a comparison of these runs of one case lets differ: the choices the case names
    (in either run) and those open in every case."""
    return {*EVERY_CASE_CHOICES, *(name for case in cases for name in case.get("choices") or ())}


def compare_results(results_a: dict[str, Any], results_b: dict[str, Any]) -> Comparison:
    cases_a = {case["id"]: case for case in results_a["cases"]}
    cases_b = {case["id"]: case for case in results_b["cases"]}
    compared = []
    for case_id in sorted(set(cases_a) | set(cases_b)):
        a, b = cases_a.get(case_id), cases_b.get(case_id)
        if a is None or b is None:
            present = a or b
            assert present is not None
            compared.append(CaseComparison(
                case_id, present.get("level"), a and a["verdict"], b and b["verdict"],
                "only A" if b is None else "only B",
                note="not run in B" if b is None else "not run in A"))
            continue
        differences = observation_differences(a.get("observations") or {},
                                              b.get("observations") or {})
        kind, note = classify(a["verdict"], b["verdict"], differences,
                              level=a.get("level") or b.get("level"),
                              choices=comparison_choices(a, b))
        compared.append(CaseComparison(case_id, a.get("level"), a["verdict"], b["verdict"],
                                       kind, differences, note))
    return Comparison(run_label(results_a), run_label(results_b), compared)


def run_label(results: dict[str, Any]) -> str:
    run = results.get("run", {})
    label = str(run.get("target", "?"))
    sysctls = run.get("sysctls_applied") or {}
    if sysctls:
        label += " (" + ", ".join(f"{k}={v}" for k, v in sysctls.items()) + ")"
    return label


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(comparison: Comparison) -> str:
    """Counts, then one section per kind, deviations first; every case in exactly one."""
    counts = comparison.counts()
    lines = [f"# {comparison.label_a} (A) against {comparison.label_b} (B)", "",
             ", ".join(f"{kind}: {counts[kind]}" for kind, *_ in SECTIONS if kind in counts),
             ""]
    for kind, title, explanation in SECTIONS:
        cases = [case for case in comparison.cases if case.kind == kind]
        if not cases:
            continue
        lines += [f"## {title} ({len(cases)})", "", explanation, "",
                  "| case | level | A | B | kind | note | observations that differ (A / B) |",
                  "|---|---|---|---|---|---|---|"]
        for case in cases:
            differences = "<br>".join(
                f"`{name}`: {_cell(_short(a))} / {_cell(_short(b))}"
                for name, (a, b) in case.differences.items())
            lines.append(f"| {_cell(case.id)} | {case.level or ''} | {case.verdict_a or '-'} | "
                         f"{case.verdict_b or '-'} | {case.kind} | {_cell(case.note)} | "
                         f"{differences} |")
        lines.append("")
    return "\n".join(lines)


def write_comparison(directory: Path, comparison: Comparison) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / "compare.json", directory / "compare.md"
    json_path.write_text(json.dumps(
        {"a": comparison.label_a, "b": comparison.label_b, "counts": comparison.counts(),
         "cases": [asdict(case) for case in comparison.cases]}, indent=2, default=str))
    markdown_path.write_text(to_markdown(comparison))
    return json_path, markdown_path
