"""The cases as pytest collects them: their IDs, requirements, frame choices and intent
(the plugin's and `conformance list`'s), and collecting them without running any."""

from pathlib import Path
from typing import Any

import pytest

from conformance.errors import UsageError
from conformance.requirements.catalogue import Catalogue, default_catalogue_path
from conformance.run import layout
from conformance.run.session import PYTEST_ISOLATION, RunEnded
from conformance.testbench.observed import FRAME_CHOICE_NAMES
from conformance.verdicts import EXIT_FAIL, EXIT_USAGE


def case_id(item: pytest.Item) -> str:
    """The case's ID: its node ID relative to the suites directory."""
    return _case_id(Path(str(item.path)), item.name)


def case_id_of_node(rootpath: Path, nodeid: str) -> str:
    """The ID of the case a pytest node ID (relative to `rootpath`) names, for a process
    that has not collected it (pytest-xdist's controller)."""
    path, _, name = nodeid.partition("::")
    return _case_id(rootpath / path, name)


def _case_id(path: Path, name: str) -> str:
    for root, prefix in ((layout.SUITES_ROOT, ""),
                         *((suite, f"{suite.name}/") for suite in layout.EXTRA_SUITES)):
        try:
            return f"{prefix}{path.relative_to(root).as_posix()}::{name}"
        except ValueError:
            continue
    return f"{path.name}::{name}"


def requirement_ids(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for marker in item.iter_markers("requirement"):
        ids.extend(str(arg) for arg in marker.args)
    return ids


def frame_choices(item: pytest.Item) -> list[str]:
    """The frame aspects a case names as the DUT's choice (`@choices("frame.psh")`)."""
    names: list[str] = []
    for marker in item.iter_markers("choices"):
        names.extend(str(arg) for arg in marker.args if str(arg) not in names)
    return names


def case_doc(item: pytest.Item) -> str:
    """The first line of the case's docstring: its intent."""
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    return doc.strip().split("\n")[0]


def marker_problems(item: pytest.Item, catalogue: Catalogue) -> list[str]:
    """What a run refuses in a case's markers: no requirement, or one the catalogue
    lacks, or an unknown frame choice."""
    identifier = case_id(item)
    ids = requirement_ids(item)
    problems = [] if ids else [f"{identifier}: no @requirement marker"]
    problems += [f"{identifier}: unknown requirement {requirement_id}"
                 for requirement_id in ids if requirement_id not in catalogue.requirements]
    problems += [f"{identifier}: unknown choice {choice} (known: "
                 f"{', '.join(FRAME_CHOICE_NAMES)})"
                 for choice in frame_choices(item) if choice not in FRAME_CHOICE_NAMES]
    return problems


class _Collector:
    """A pytest plugin that keeps the collected items instead of running them."""

    def __init__(self) -> None:
        self.items: list[pytest.Item] = []
        self.errors: list[tuple[str, str]] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append((report.nodeid, report.longreprtext))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


def collect_cases(
    keyword: str | None, catalogue: Catalogue, suites: tuple[Path, ...] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """The cases of the suites (and the user's `suites`; selected by `keyword`), without
    running any: no lab, no privilege. Each: id, requirements, level (the strictest), doc,
    slow. Also the cases' disagreements with the catalogue, which `run` would refuse."""
    collector = _Collector()
    layout.EXTRA_SUITES[:] = [suite.resolve() for suite in suites]
    args = [str(layout.SUITES_ROOT), *map(str, suites), "--collect-only", *PYTEST_ISOLATION]
    if keyword:
        args += ["-k", keyword]
    status = pytest.main(args, plugins=[collector])
    if collector.errors:
        text = "\n".join(f"{nodeid}:\n{longrepr}" for nodeid, longrepr in collector.errors)
        raise RunEnded(f"cannot collect the suites:\n{text}", EXIT_FAIL)
    if status == pytest.ExitCode.USAGE_ERROR:
        raise RunEnded(None, EXIT_USAGE)  # pytest said why on stderr
    if status == pytest.ExitCode.NO_TESTS_COLLECTED and keyword:
        raise RunEnded(f"no case matches -k {keyword!r}", EXIT_USAGE)
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise RunEnded(f"collecting the suites failed (pytest exit status {status})", EXIT_FAIL)

    cases = []
    problems: list[str] = []
    for item in collector.items:
        identifier = case_id(item)
        requirements = requirement_ids(item)
        level = "?"
        if not requirements:
            problems.append(f"{identifier}: no @requirement marker")
        else:
            try:
                level = catalogue.level_of(requirements)
            except UsageError as error:
                problems.append(f"{identifier}: {error}")
        cases.append({
            "id": identifier, "requirements": requirements, "level": level,
            "doc": case_doc(item), "slow": item.get_closest_marker("slow") is not None,
        })
    return cases, problems


def requirement_summaries() -> dict[str, str]:
    """Each requirement's summary by ID; none when the catalogue does not load."""
    try:
        catalogue = Catalogue.load(default_catalogue_path())
    except UsageError:
        return {}  # the evidence is shown without summaries
    return {key: requirement.summary for key, requirement in catalogue.requirements.items()}
