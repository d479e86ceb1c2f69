"""Compare two runs case by case: verdicts, and the observations that differ.

Each case falls in one of these kinds:

* `same`: same verdict, same observations;
* `allowed`: same verdict, different observations: both targets meet what the case
  judges, and the difference is one the RFCs leave open (recorded, never a deviation);
* `deviation`: the verdicts differ and one of them is fail, warn or error;
* `differs`: the verdicts differ otherwise (pass against n/a, say);
* `only A` / `only B`: the case ran in one of the runs only.

Timings (observations whose name ends in `_s`) are equal within TIMING_TOLERANCE.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIMING_TOLERANCE = 0.25  # relative
FAILING = ("fail", "warn", "error")


@dataclass(frozen=True)
class CaseComparison:
    id: str
    level: str | None
    verdict_a: str | None
    verdict_b: str | None
    kind: str
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)


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


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= TIMING_TOLERANCE * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def observation_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    differences = {}
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name), b.get(name)
        same = _close(left, right) if name.endswith("_s") else left == right
        if not same:
            differences[name] = (left, right)
    return differences


def _kind(verdict_a: str, verdict_b: str, differences: dict[str, Any]) -> str:
    if verdict_a != verdict_b:
        return "deviation" if verdict_a in FAILING or verdict_b in FAILING else "differs"
    return "allowed" if differences else "same"


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
                "only A" if b is None else "only B"))
            continue
        differences = observation_differences(a.get("observations") or {},
                                              b.get("observations") or {})
        compared.append(CaseComparison(case_id, a.get("level"), a["verdict"], b["verdict"],
                                       _kind(a["verdict"], b["verdict"], differences),
                                       differences))
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


def to_markdown(comparison: Comparison) -> str:
    lines = [f"# {comparison.label_a} (A) against {comparison.label_b} (B)", "",
             ", ".join(f"{kind}: {count}" for kind, count in comparison.counts().items()), "",
             "| case | level | A | B | kind | observations that differ (A / B) |",
             "|---|---|---|---|---|---|"]
    for case in comparison.cases:
        differences = "<br>".join(f"`{name}`: {_short(a)} / {_short(b)}"
                                  for name, (a, b) in case.differences.items())
        lines.append(f"| {case.id} | {case.level or ''} | {case.verdict_a or '-'} | "
                     f"{case.verdict_b or '-'} | {case.kind} | {differences} |")
    return "\n".join(lines) + "\n"


def write_comparison(directory: Path, comparison: Comparison) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / "compare.json", directory / "compare.md"
    json_path.write_text(json.dumps(
        {"a": comparison.label_a, "b": comparison.label_b, "counts": comparison.counts(),
         "cases": [asdict(case) for case in comparison.cases]}, indent=2, default=str))
    markdown_path.write_text(to_markdown(comparison))
    return json_path, markdown_path
