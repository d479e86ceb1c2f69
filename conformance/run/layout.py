"""Where a run's files go: run directories under pcaps/runs, one subdirectory per
target (its label), the files a run writes (purged before the next run there), the
latest run, and finding a case in a run.
"""

import datetime
import json
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.evidence.writer import read_case_documents

# Read through the module at each use (`layout.SUITES_ROOT`): tests point it elsewhere.
SUITES_ROOT = Path(__file__).resolve().parents[2] / "suites"
# The user's own suites of the run in this process (`--suite`): their cases' IDs start
# with the directory's name.
EXTRA_SUITES: list[Path] = []
RUNS_DIRECTORY = Path("pcaps/runs")
RUN_FILES = ("*.json", "*.pcapng", "junit.xml")  # what a run writes into a target's directory


def run_stamp() -> str:
    """The name of a run directory started now: YYYYmmdd-HHMMSS."""
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_directory() -> Path:
    """pcaps/runs/<YYYYmmdd-HHMMSS>, suffixed -2, -3, ... when a run already took it."""
    stamp = run_stamp()
    for attempt in range(1, 100):
        candidate = RUNS_DIRECTORY / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise UsageError(f"cannot create {candidate}: {error.strerror}") from error
        return candidate
    raise UsageError(f"cannot find a free run directory name under {RUNS_DIRECTORY}")


def purge_run_files(directory: Path) -> None:
    """Remove what an earlier run wrote into `directory`: a directory holds one run."""
    for pattern in RUN_FILES:
        for stale in directory.glob(pattern):
            stale.unlink()


def target_labels(targets: list[str]) -> list[str]:
    """The directory of each target in the run: its name, suffixed -2 when it comes twice."""
    labels: list[str] = []
    for target in targets:
        label, number = target, 1
        while label in labels:
            number += 1
            label = f"{target}-{number}"
        labels.append(label)
    return labels


def _holds_results(directory: Path) -> bool:
    return (directory / "results.json").exists() or any(
        path.name != "results.json" for path in directory.glob("*.json")
    )


def latest_run() -> Path:
    runs = sorted(path for path in RUNS_DIRECTORY.glob("*") if path.is_dir()) \
        if RUNS_DIRECTORY.is_dir() else []
    if not runs:
        raise UsageError(f"no run under {RUNS_DIRECTORY}; name one with --run DIR")
    return runs[-1]


def target_directory(run_directory: Path, target: str | None) -> Path:
    """`run_directory` itself when it holds results, else its `<target>/` subdirectory."""
    if target is not None and (run_directory / target).is_dir():
        return run_directory / target
    if _holds_results(run_directory):
        return run_directory
    targets = sorted(path.name for path in run_directory.iterdir()
                     if path.is_dir() and _holds_results(path))
    if target is not None:
        raise UsageError(f"{run_directory} has no results for target {target!r} "
                         f"(it has: {', '.join(targets) or 'none'})")
    if not targets:
        raise UsageError(f"{run_directory} holds no results (no results.json, no case files)")
    if len(targets) > 1:
        raise UsageError(f"{run_directory} holds several targets ({', '.join(targets)}): "
                         "choose one with --target")
    return run_directory / targets[0]


def results_of(run_directory: Path) -> dict[str, Any]:
    """The results.json of a run (or of one target's directory in it)."""
    directory = target_directory(run_directory, None)
    path = directory / "results.json"
    if not path.exists():
        raise UsageError(f"{directory} has no results.json (was the run interrupted early?)")
    results: dict[str, Any] = json.loads(path.read_text())
    return results


def case_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """Each case's JSON by case ID; results.json entries stand in for missing files."""
    documents = {document["id"]: document for document in read_case_documents(directory)}
    results = directory / "results.json"
    if results.exists():
        for case in json.loads(results.read_text()).get("cases", []):
            documents.setdefault(case["id"], case)
    return documents


def pick_case(query: str, identifiers: list[str]) -> str:
    """The case ID equal to `query`, or the only one containing it."""
    query = query.removeprefix("suites/")
    if query in identifiers:
        return query
    matches = sorted(identifier for identifier in identifiers if query in identifier)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listed = "\n  ".join(sorted(identifiers)) or "(none)"
        raise UsageError(f"no case matches {query!r}; the cases are:\n  {listed}")
    listed = "\n  ".join(matches)
    raise UsageError(f"{query!r} matches {len(matches)} cases; say which:\n  {listed}")
