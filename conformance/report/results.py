"""The run's `results.json` and `junit.xml`, gathered from the per-case evidence."""

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.evidence.writer import RESULT_KEYS

RESULTS_FORMAT = 1


def gather_results(run: dict[str, Any], documents: list[dict[str, Any]]) -> dict[str, Any]:
    """results.json of a run: `run`'s facts and each case document's result fields
    (`read_case_documents` of the run's directory)."""
    cases: list[dict[str, Any]] = [{key: document.get(key) for key in RESULT_KEYS}
                                   for document in documents]
    cases.sort(key=lambda case: case["id"])
    counts: dict[str, int] = {}
    for case in cases:
        counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    return {"format": RESULTS_FORMAT, "run": {**run, "verdicts": counts}, "cases": cases}


def write_results(directory: Path, results: dict[str, Any]) -> Path:
    path = directory / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


def write_junit(directory: Path, results: dict[str, Any]) -> Path:
    """JUnit XML for CI dashboards: fail -> failure, error -> error, n/a -> skipped.

    warn and info count as passing test cases; their message is kept in system-out."""
    cases = results["cases"]
    counted = [case for case in cases if case.get("expectation") != "expected"]
    suite = ElementTree.Element(
        "testsuite",
        name=f"conformance.{results['run'].get('target', 'unknown')}",
        tests=str(len(cases)),
        failures=str(sum(c["verdict"] == "fail" for c in counted)),
        errors=str(sum(c["verdict"] == "error" for c in counted)),
        skipped=str(sum(c["verdict"] == "n/a" for c in cases)),
        time=f"{sum(c['duration_s'] or 0 for c in cases):.3f}",
    )
    for case in cases:
        module, _, name = case["id"].partition("::")
        element = ElementTree.SubElement(
            suite, "testcase", classname=module.removesuffix(".py").replace("/", "."),
            name=name, time=f"{case['duration_s'] or 0:.3f}",
        )
        properties = ElementTree.SubElement(element, "properties")
        properties.extend(
            ElementTree.Element("property", name="requirement", value=requirement)
            for requirement in case["requirements"]
        )
        properties.extend([
            ElementTree.Element("property", name="level", value=str(case.get("level"))),
            ElementTree.Element("property", name="verdict", value=case["verdict"]),
        ])
        message = case.get("message") or ""
        verdict = case["verdict"]
        if case.get("expectation") == "expected":
            pass
        elif verdict == "fail":
            ElementTree.SubElement(element, "failure", message=message.splitlines()[0]
                                   if message else "fail").text = message
        elif verdict == "error":
            ElementTree.SubElement(element, "error", message=message.splitlines()[0]
                                   if message else "error").text = message
        elif verdict == "n/a":
            ElementTree.SubElement(element, "skipped", message=message)
        ElementTree.SubElement(element, "system-out").text = (
            f"verdict: {verdict}\nevidence: {case['evidence']}\n{message}"
        )
    path = directory / "junit.xml"
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def target_directories(run: Path) -> dict[str, Path]:
    """The target directories of a run directory by label (or the one given, if it is
    one): those holding a results.json."""
    if (run / "results.json").exists():
        return {run.name: run}
    found = {child.name: child for child in sorted(run.iterdir())
             if child.is_dir() and (child / "results.json").exists()}
    if not found:
        raise UsageError(f"{run}: no results.json in it or in a directory under it")
    return found
