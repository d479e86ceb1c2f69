"""Print a Markdown table, requirement by target, from one or more runs' results.json.

    python scripts/conformance_table.py pcaps/runs/<run-id>/linux/results.json [...]

A requirement's cell lists the verdicts of the cases that check it (pass, info, ...); a
verdict the target's expectations file lists as a known deviation reads "fail (known)".
A requirement no case covers gets one row-wide "not covered" cell with the reason.
"""

import json
import sys
from pathlib import Path

from conformance.requirements.catalogue import Catalogue, default_catalogue_path


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    catalogue = Catalogue.load(default_catalogue_path())
    runs = [json.loads(Path(path).read_text()) for path in paths]
    targets = [run["run"]["target"] for run in runs]
    print("| requirement | level | " + " | ".join(targets) + " |")
    print("|---|---|" + "---|" * len(targets))
    for requirement in catalogue.requirements.values():
        cells = []
        for run in runs:
            verdicts = sorted({
                case["verdict"] + (" (known)" if case.get("expectation") == "expected" else "")
                for case in run["cases"] if requirement.id in case["requirements"]
            })
            cells.append(", ".join(verdicts) if verdicts else "no case run")
        if requirement.uncovered and all(cell == "no case run" for cell in cells):
            cells = [f"not covered: {requirement.uncovered}"] + [""] * (len(cells) - 1)
        print(f"| {requirement.id} | {requirement.level} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
