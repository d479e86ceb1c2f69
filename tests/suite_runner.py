"""Run conformance suites in a child process and read back results.json (for tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SUITES = REPOSITORY / "suites"

privileged = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def run_suites(out: Path, *args: str, target: str = "linux",
               wireshark: bool = False) -> dict[str, Any]:
    """Run `pytest SUITES --target ...` in a child process; return results.json.

    Without `wireshark` the captures are not read with Wireshark's dissectors
    (`--no-wireshark`): a verdict is then the case's own, so a broken stack must fail a
    case by what the case checks, not by a frame Wireshark rejects; and 180 ms of CPU a
    case are saved. The tests of that view, and the whole-catalogue runs of the stacks as
    they are, ask for it."""
    command = [sys.executable, "-m", "pytest", str(SUITES), "--target", target,
               "--out", str(out), "-p", "no:cacheprovider", "-q", *args,
               *(() if wireshark else ("--no-wireshark",))]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY,
                          timeout=600)
    results_path = out / target / "results.json"
    assert results_path.exists(), f"no results.json:\n{done.stdout[-3000:]}\n{done.stderr}"
    results: dict[str, Any] = json.loads(results_path.read_text())
    results["exit_status"] = done.returncode
    return results


def case(results: dict[str, Any], name: str) -> dict[str, Any]:
    matching = [entry for entry in results["cases"] if entry["id"].endswith(f"::{name}")]
    assert len(matching) == 1, f"{name}: {len(matching)} cases"
    return matching[0]
