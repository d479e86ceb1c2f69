"""Run every suite (slow cases included) against each target and keep the evidence of
every case as the committed examples under pcaps/reference/<target>/ (root).

    python scripts/refresh_reference_pcaps.py [-k EXPR] [TARGET ...]
        (default: ref linux lwip gvisor; with -k, only the selected cases' evidence is
        replaced and the rest kept)
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCES = REPOSITORY / "pcaps" / "reference"
TARGETS = ["ref", "linux", "lwip", "gvisor"]


def merge_results(kept: Path, new: Path) -> None:
    """The cases of `new` in place of the same cases of `kept`, its other cases kept, and
    the verdict counts taken again."""
    results = json.loads(kept.read_text())
    fresh = {case["id"]: case for case in json.loads(new.read_text())["cases"]}
    cases = [fresh.pop(case["id"], case) for case in results["cases"]] + list(fresh.values())
    verdicts = Counter(case["verdict"] for case in cases)
    results["cases"], results["run"]["verdicts"] = cases, dict(verdicts)
    kept.write_text(json.dumps(results, indent=2))


def refresh(target: str, selection: str | None) -> int:
    reference = REFERENCES / target
    out = REPOSITORY / "pcaps" / "runs" / time.strftime(f"refresh-%Y%m%d-%H%M%S-{target}")
    command = [sys.executable, "-m", "pytest", str(REPOSITORY / "suites"), "--target",
               target, "--out", str(out), "--slow", "-p", "no:cacheprovider", "-q",
               "-n", "2"]
    if selection is not None:
        command += ["-k", selection]
    status = subprocess.run(command, cwd=REPOSITORY).returncode
    if status != 0:
        print(f"the run did not pass (exit {status}); reference captures left as they "
              f"were, the run's evidence is in {out / target}")
        return status
    if selection is None and reference.exists():
        shutil.rmtree(reference)
    reference.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in sorted(Path(out, target).iterdir()):
        if path.name == "results.json" and selection is not None:
            merge_results(reference / path.name, path)
        elif path.suffix in (".pcapng", ".json"):
            shutil.copy2(path, reference / path.name)
            copied += path.suffix == ".pcapng"
    shutil.rmtree(out)
    print(f"wrote {copied} captures to {reference}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="selection", help="only the cases pytest -k selects")
    parser.add_argument("targets", nargs="*", default=TARGETS)
    arguments = parser.parse_args()
    for target in arguments.targets:
        status = refresh(target, arguments.selection)
        if status != 0:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
