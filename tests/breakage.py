"""Cases run against a reference stack broken on purpose, and what each must then give.

A table maps each case to its breaker: a patch (a function of one of the `patch_files`,
applied with --ref-patch) or a setting (`NAME=VALUE`, applied with --ref-setting). MUST
cases must then fail, SHOULD cases warn, and cases that only observe record a different
observation. Cases sharing a breaker run together, in one run of the suites.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.suite_runner import REPOSITORY, case, run_suites


@dataclass(frozen=True)
class Observed:
    """A case that only observes: under `breaker` it gives `verdict` with `key` = `value`."""

    breaker: str
    key: str
    value: Any
    verdict: str = "info"


class Breakages:
    def __init__(
        self, *, patch_files: list[Path], must: dict[str, str], should: dict[str, str],
        observed: dict[str, Observed], slow: frozenset[str] = frozenset(),
    ) -> None:
        self.patch_files = patch_files
        self.observed = observed
        self.slow = slow
        self.expected = {**{name: "fail" for name in must}, **{name: "warn" for name in should},
                         **{name: entry.verdict for name, entry in observed.items()}}
        self.breaker = {**must, **should,
                        **{name: entry.breaker for name, entry in observed.items()}}
        self.runs = sorted(set(self.breaker.values()))

    def cases_broken_by(self, breaker: str) -> list[str]:
        return sorted(name for name, used in self.breaker.items() if used == breaker)

    def options(self, breaker: str) -> list[str]:
        if "=" in breaker:
            return ["--ref-setting", breaker]
        [path] = [path for path in self.patch_files if f"\ndef {breaker}(" in path.read_text()]
        return ["--ref-patch", f"{path}:{breaker}"]

    def selection(self, names: list[str]) -> list[str]:
        """-k for the cases: a parametrized one (`name[id]`) by its function and its id."""
        terms = []
        for name in names:
            function, _, id_ = name.partition("[")
            terms.append(f"({function} and {id_.rstrip(']')})" if id_ else function)
        slow = ["--slow"] if self.slow & {name.partition("[")[0] for name in names} else []
        return ["-k", " or ".join(terms), *slow]

    def unused_patches(self) -> set[str]:
        """Patches of the patch files that no case is broken with."""
        defined = {line[4:].partition("(")[0] for path in self.patch_files
                   for line in path.read_text().splitlines()
                   if line.startswith("def ") and not line.startswith("def _")}
        return defined - set(self.runs)

    def wrong_verdicts(self, out: Path, breaker: str) -> dict[str, Any]:
        """Run the cases of `breaker` on the broken stack; those that did not give what
        they must, with what they gave."""
        names = self.cases_broken_by(breaker)
        results = run_suites(out, *self.selection(names), *self.options(breaker), target="ref")
        wrong: dict[str, Any] = {}
        for name in names:
            entry = case(results, name)
            if entry["verdict"] != self.expected[name]:
                wrong[name] = (entry["verdict"], entry["message"])
            elif name in self.observed:
                observed = self.observed[name]
                if entry["observations"].get(observed.key) != observed.value:
                    wrong[name] = ("observed", entry["observations"])
        return wrong


def listed_cases(*prefixes: str) -> set[str]:
    """The cases (`name` or `name[id]`) of the suite modules `prefixes` name."""
    listed = subprocess.run([sys.executable, "-m", "conformance.cli", "list", "--json"],
                            capture_output=True, text=True, check=True, cwd=REPOSITORY)
    return {entry["id"].split("::")[1] for entry in json.loads(listed.stdout)
            if entry["id"].startswith(prefixes)}
