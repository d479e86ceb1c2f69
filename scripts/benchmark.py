"""Benchmarks of the tester itself (needs root): what a lab costs, what a run costs.

    python scripts/benchmark.py [--labs 20] [--skip-suite]

Prints the per-case overhead of setting up and removing a lab (namespace, TAP device,
Linux agent), broken down by step, and the wall time of the default suite against the
Linux target. Figures go in the notes; tests never assert on them.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.lab import addressing
from conformance.lab.netns import Lab
from conformance.targets.linux import LinuxTarget

REPOSITORY = Path(__file__).resolve().parents[1]


def lab_overhead(count: int) -> dict[str, dict[str, float]]:
    """Set up and remove `count` labs the way each case does, timing every step."""
    steps: dict[str, list[float]] = {"namespace": [], "tap": [], "agent": [], "teardown": [],
                                     "total": []}
    target = LinuxTarget()
    for _ in range(count):
        stamps = [time.perf_counter()]
        lab = Lab.create()
        stamps.append(time.perf_counter())
        lab.add_tap(host=addressing.DUT)
        stamps.append(time.perf_counter())
        agent = target.start_agent(lab)
        stamps.append(time.perf_counter())
        agent.close()
        lab.remove()
        stamps.append(time.perf_counter())
        for step, begin, end in zip(("namespace", "tap", "agent", "teardown"), stamps,
                                    stamps[1:], strict=False):
            steps[step].append(end - begin)
        steps["total"].append(stamps[-1] - stamps[0])
    return {
        step: {"median_ms": round(statistics.median(values) * 1000, 1),
               "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))] * 1000, 1)}
        for step, values in steps.items()
    }


def suite_wall_time() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", str(REPOSITORY / "suites"),
                        "--target", "linux", "--out", out, "-p", "no:cacheprovider", "-q"],
                       cwd=REPOSITORY, capture_output=True, check=False)
        wall = time.perf_counter() - start
        results = json.loads(Path(out, "linux", "results.json").read_text())
    durations = [case["duration_s"] for case in results["cases"]]
    return {"cases": len(durations), "wall_s": round(wall, 2),
            "sum_of_cases_s": round(sum(durations), 2),
            "median_case_s": round(statistics.median(durations), 3),
            "verdicts": results["run"]["verdicts"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", type=int, default=20)
    parser.add_argument("--skip-suite", action="store_true")
    options = parser.parse_args()
    report: dict[str, object] = {"lab_overhead": lab_overhead(options.labs)}
    if not options.skip_suite:
        report["suite_linux"] = suite_wall_time()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
