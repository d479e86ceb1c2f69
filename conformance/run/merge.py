"""Shard runs joined into one run directory (`conformance merge`), as if one run had
run every case: each target's case files side by side, and results.json and junit.xml
gathered from them the way a run gathers its own."""

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.evidence.writer import read_case_documents
from conformance.report.results import (
    gather_results,
    target_directories,
    write_junit,
    write_results,
)


@dataclass
class Merged:
    """What a merge wrote: per target label, its cases and the shards it joined."""

    cases: dict[str, int] = field(default_factory=dict)
    shards: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)  # shards of N not given
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run_info(results: dict[str, Any]) -> dict[str, Any]:
    info = dict(results["run"])
    info.pop("verdicts", None)
    return info


def merge_runs(runs: list[Path], out: Path) -> Merged:
    """Join the shard runs `runs` into `out` (which must not hold a run already). A case
    that two of them ran is a usage error: they were not shards of one run."""
    by_label: dict[str, list[Path]] = {}
    for run in runs:
        for label, directory in target_directories(run).items():
            by_label.setdefault(label, []).append(directory)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: not empty")
    merged = Merged()
    for label, directories in by_label.items():
        destination = out / label
        destination.mkdir(parents=True, exist_ok=True)
        seen: dict[str, Path] = {}
        infos = []
        for directory in directories:
            infos.append(_run_info(json.loads((directory / "results.json").read_text())))
            for document in read_case_documents(directory):
                if document["id"] in seen:
                    raise UsageError(f"{document['id']} is in both {seen[document['id']]} and "
                                     f"{directory}: these are not shards of one run")
                seen[document["id"]] = directory
            for path in directory.iterdir():
                if path.name not in ("results.json", "junit.xml") and \
                        path.suffix in (".json", ".pcapng"):
                    shutil.copy2(path, destination / path.name)
        info = dict(infos[0])
        info["started"] = min((i.get("started") or "" for i in infos), default=None) or None
        info["finished"] = max((i.get("finished") or "" for i in infos), default=None) or None
        info["interrupted"] = any(i.get("interrupted") for i in infos)
        shards = sorted({i["shard"] for i in infos if i.get("shard")})
        info["shard"] = None
        info["merged_shards"] = shards
        counts = {int(shard.split("/")[1]) for shard in shards}
        if len(counts) > 1:
            raise UsageError(f"{label}: shards of different counts ({', '.join(shards)})")
        if counts:
            total = counts.pop()
            merged.missing[label] = [f"{k}/{total}" for k in range(1, total + 1)
                                     if f"{k}/{total}" not in shards]
        results = gather_results(info, read_case_documents(destination))
        write_results(destination, results)
        write_junit(destination, results)
        merged.cases[label] = len(results["cases"])
        merged.shards[label] = shards
        merged.results[label] = results
    return merged
