"""Run the default catalogue N times per target and report what changed between runs
(needs root).

    python scripts/stability.py [--targets ref,linux] [--runs 10] [--workers N]
                                [--out DIR] [-k EXPR] [--serial-too] [--no-wireshark]

For each target: the runs' wall times, the cases whose verdict changed between runs
(with the verdicts seen) and the cases whose observations changed as `conformance
compare` judges them (timings within its tolerance), with the values seen and the kind
`compare` gives each change (`allowed`: only in choices the case leaves open). With
``--serial-too`` one more run with ``--workers 1`` is compared against the parallel ones:
a verdict a serial run gives differently is a scheduling artefact. Prints JSON; exit status 1 when a
verdict changed. The runs stay under DIR (default: a temporary directory, removed).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from conformance.report.compare import classify, comparison_choices, observation_differences


def one_run(target: str, out: Path, workers: int | None, select: str | None,
            wireshark: bool = True) -> dict[str, Any]:
    command = [sys.executable, "-m", "conformance.cli", "run", "--target", target,
               "--out", str(out), *(() if wireshark else ("--no-wireshark",))]
    if workers is not None:
        command += ["--workers", str(workers)]
    if select:
        command += ["-k", select]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    results_file = out / target / "results.json"
    if not results_file.exists():
        raise SystemExit(f"{target}: the run left no results.json (exit "
                         f"{completed.returncode}):\n{completed.stderr[-2000:]}")
    cases = json.loads(results_file.read_text())["cases"]
    return {"wall_s": round(wall, 2), "exit": completed.returncode,
            "cases": {case["id"]: case for case in cases}}


def changes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case, the distinct verdicts over `runs` (where there is more than one; a case
    some run lacks counts as `missing`), and the observations that differ from the first
    run's as `conformance compare` judges them (timings within its tolerance), each with
    the values seen."""
    verdicts: dict[str, list[str]] = defaultdict(list)
    observations: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    kinds: dict[str, set[str]] = defaultdict(set)
    every = set().union(*(run["cases"] for run in runs))
    first = runs[0]["cases"]
    for run in runs:
        for case_id in every:
            case = run["cases"].get(case_id)
            verdicts[case_id].append(case["verdict"] if case else "missing")
            if case is None or case_id not in first:
                continue
            differences = observation_differences(first[case_id].get("observations") or {},
                                                  case.get("observations") or {})
            if differences:
                kinds[case_id].add(classify(
                    first[case_id]["verdict"], case["verdict"], differences,
                    level=case.get("level"), choices=comparison_choices(first[case_id], case))[0])
            for name, (seen_first, seen_here) in differences.items():
                values = observations[case_id][name]
                for value in (json.dumps(seen_first), json.dumps(seen_here)):
                    if value not in values:
                        values.append(value)
    return {
        "verdict_changes": {case_id: sorted(set(seen)) for case_id, seen in verdicts.items()
                            if len(set(seen)) > 1},
        "observation_changes": {case_id: dict(names)
                                for case_id, names in sorted(observations.items())},
        # How `conformance compare` would call each such change against the first run.
        "comparison_kinds": {case_id: sorted(seen) for case_id, seen in sorted(kinds.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="ref,linux")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, help="default: the run's own choice")
    parser.add_argument("-k", dest="select", help="only the cases matching EXPR")
    parser.add_argument("--no-wireshark", action="store_true",
                        help="runs without Wireshark's reads (and their default workers)")
    parser.add_argument("--serial-too", action="store_true",
                        help="one more run with --workers 1, compared with the others")
    parser.add_argument("--out", type=Path, help="keep the runs here")
    options = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cf-stability-") as temporary:
        root = options.out or Path(temporary)
        for target in options.targets.split(","):
            runs = []
            for index in range(options.runs):
                runs.append(one_run(target, root / f"{target}-{index + 1}", options.workers,
                                    options.select, not options.no_wireshark))
                print(f"{target} run {index + 1}/{options.runs}: {runs[-1]['wall_s']} s",
                      file=sys.stderr)
            figures: dict[str, Any] = {
                "runs": len(runs), "cases": len(runs[0]["cases"]),
                "wall_s": [run["wall_s"] for run in runs],
                "exit_statuses": sorted({run["exit"] for run in runs}),
                **changes(runs),
            }
            if options.serial_too:
                serial = one_run(target, root / f"{target}-serial", 1, options.select,
                                 not options.no_wireshark)
                figures["serial_wall_s"] = serial["wall_s"]
                # Against the first parallel run: verdicts, and the observations too.
                figures["serial_differences"] = changes([serial, runs[0]])
            report[target] = figures
    print(json.dumps(report, indent=2))
    changed = any(figures["verdict_changes"]
                  or figures.get("serial_differences", {}).get("verdict_changes")
                  for figures in report.values())
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
