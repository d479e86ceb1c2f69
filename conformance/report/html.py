"""The HTML report of one or more runs: a self-contained directory (no server, no
network) that opens from disk. index.html: the verdicts of each target, the requirement
x target matrix and every case, with filters by verdict, RFC and level (also from the
address: `index.html#verdict=fail&rfc=RFC9293&level=MUST`); a page per case and target
with its ladder diagram, observations and DUT calls, linking the pcapng and JSON; for two
or more targets, compare.html: the cases side by side, deviations first."""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from conformance.errors import UsageError
from conformance.evidence.pcapng import read_pcapng
from conformance.evidence.wireshark import expert_messages_by_frame
from conformance.evidence.writer import case_file_stem, read_case_documents
from conformance.report.compare import compare_results, run_label
from conformance.report.ladder import Ladder, build_ladder
from conformance.report.results import target_directories
from conformance.requirements.catalogue import (
    Catalogue,
    default_catalogue_path,
    requirement_order,
    rfc_of,
)

TEMPLATES = Path(__file__).with_name("templates")
VERDICT_ORDER = ("fail", "error", "warn", "pass", "info", "n/a")
KIND_ORDER = ("deviation", "differs", "only A", "only B", "allowed", "same")


@dataclass
class TargetRun:
    label: str
    directory: Path
    results: dict[str, Any]
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # by case ID

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for case in self.results["cases"]:
            counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
        return dict(sorted(counts.items(), key=lambda item: VERDICT_ORDER.index(item[0])
                           if item[0] in VERDICT_ORDER else 99))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.filters["json"] = lambda value: json.dumps(value, indent=1, default=str)
    environment.filters["rfc"] = rfc_of
    environment.filters["stem"] = case_file_stem
    return environment


def load_runs(runs: list[Path]) -> list[TargetRun]:
    """Every target directory of the runs given, labelled uniquely."""
    loaded: list[TargetRun] = []
    for run in runs:
        for label, directory in target_directories(run).items():
            results = json.loads((directory / "results.json").read_text())
            unique, number = label, 1
            while any(existing.label == unique for existing in loaded):
                number += 1
                unique = f"{label}-{number}"
            target = TargetRun(unique, directory, results)
            target.cases = {case["id"]: case for case in results["cases"]}
            loaded.append(target)
    if not loaded:
        raise UsageError("no run to report on")
    return loaded


def _ladder(directory: Path, case: dict[str, Any], document: dict[str, Any]) -> Ladder | None:
    evidence = case.get("evidence")
    if not evidence or not (directory / evidence).exists():
        return None
    try:
        frames = read_pcapng(directory / evidence)
    except ValueError:
        return None
    senders = [frame.get("sender", "") for frame in document.get("frames", [])]
    wireshark = expert_messages_by_frame(document.get("observations") or {})
    return build_ladder(frames, senders, document.get("calls", []),
                        document.get("first_frame_s"), wireshark)


def _relative(path: Path, start: Path) -> str:
    """A link from a page in `start` to `path`, relative so that the report and its runs
    move together."""
    return os.path.relpath(path.resolve(), start.resolve())


def write_report(runs: list[Path], out: Path, catalogue: Catalogue | None = None) -> Path:
    """Write the report of `runs` into `out`; returns index.html."""
    targets = load_runs(runs)
    catalogue = catalogue or Catalogue.load(default_catalogue_path())
    environment = _environment()
    out.mkdir(parents=True, exist_ok=True)
    cases_dir = out / "cases"
    if cases_dir.exists():
        shutil.rmtree(cases_dir)
    cases_dir.mkdir()
    case_ids = sorted({case_id for target in targets for case_id in target.cases})
    summaries = {key: requirement.summary for key, requirement in catalogue.requirements.items()}
    rows: list[dict[str, Any]] = []
    for case_id in case_ids:
        first = next(target.cases[case_id] for target in targets if case_id in target.cases)
        rows.append({"id": case_id, "level": first.get("level"),
                     "requirements": first.get("requirements") or [],
                     "rfcs": sorted({rfc_of(r) for r in first.get("requirements") or []}),
                     "verdicts": {t.label: t.cases[case_id] for t in targets
                                  if case_id in t.cases}})
    matrix = _matrix(targets, catalogue)
    for target in targets:
        documents = {document["id"]: document
                     for document in read_case_documents(target.directory)}
        for case in target.results["cases"]:
            document = documents.get(case["id"], {})
            page = cases_dir / f"{target.label}--{case_file_stem(case['id'])}.html"
            page.write_text(environment.get_template("case.html").render(
                title=f"{case['id']} on {target.label}", case=case, document=document,
                target=target, summaries=summaries,
                ladder=_ladder(target.directory, case, document),
                pcap=_relative(target.directory / (case.get("evidence") or ""), cases_dir),
                json_path=_relative(target.directory / f"{case_file_stem(case['id'])}.json",
                                    cases_dir),
                others=[t.label for t in targets if case["id"] in t.cases and t is not target],
                compare=len(targets) >= 2,
            ))
    comparisons = []
    if len(targets) >= 2:
        for other in targets[1:]:
            comparison = compare_results(targets[0].results, other.results)
            ordered = sorted(comparison.cases, key=lambda c: (
                KIND_ORDER.index(c.kind) if c.kind in KIND_ORDER else 99, c.id))
            comparisons.append({"a": targets[0].label, "b": other.label,
                                "label_a": run_label(targets[0].results),
                                "label_b": run_label(other.results),
                                "counts": comparison.counts(), "cases": ordered})
        (out / "compare.html").write_text(environment.get_template("compare.html").render(
            title="comparison", targets=targets, comparisons=comparisons))
    index = out / "index.html"
    index.write_text(environment.get_template("index.html").render(
        title="conformance report", targets=targets, rows=rows, matrix=matrix,
        summaries=summaries, compare=len(targets) >= 2,
        rfcs=sorted({str(rfc) for row in rows for rfc in row["rfcs"]}),
        levels=sorted({str(row["level"]) for row in rows})))
    return index


def _matrix(targets: list[TargetRun], catalogue: Catalogue) -> list[dict[str, Any]]:
    """Each requirement a case checks: its level and, per target, the worst verdict of
    its cases (fail over error over warn over pass over info over n/a)."""
    verdicts: dict[str, dict[str, list[str]]] = {}
    for target in targets:
        for case in target.results["cases"]:
            for requirement in case.get("requirements") or []:
                verdicts.setdefault(requirement, {}).setdefault(target.label, []).append(
                    case["verdict"])
    rows = []
    for requirement in sorted(verdicts, key=requirement_order):
        known = catalogue.requirements.get(requirement)
        cells = {}
        for label, seen in verdicts[requirement].items():
            cells[label] = min(seen, key=lambda v: VERDICT_ORDER.index(v)
                               if v in VERDICT_ORDER else 99)
        rows.append({"id": requirement, "level": known.level if known else "?",
                     "rfc": rfc_of(requirement), "cells": cells})
    return rows
