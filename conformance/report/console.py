"""Console rendering with rich: run progress, run summary, case lists, one case, doctor.

Everything here draws; nothing decides a verdict or an exit status. Text that comes from
cases (IDs, messages, packet summaries) is wrapped in `Text`, never read as markup, so
`test_x[param]` prints as written.
"""

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from conformance.evidence.wireshark import expert_messages_by_frame
from conformance.report.compare import Comparison
from conformance.report.coverage import Coverage

VERDICT_STYLES = {
    "pass": "green",
    "fail": "bold red",
    "warn": "yellow",
    "info": "blue",
    "n/a": "dim",
    "error": "magenta",
}
# Worst first: the order of the summary and of the cases that did not pass.
VERDICT_ORDER = ("fail", "error", "warn", "info", "n/a", "pass")
PIPE_WIDTH = 240  # a table written to a file or a pipe keeps one row per line
OUTCOME_STYLES = {"result": "green", "errno": "yellow", "unsupported": "dim", "error": "red"}


@contextlib.contextmanager
def terminal_console(stream: TextIO) -> Iterator[Console]:
    """A console on a duplicate of `stream`'s descriptor.

    pytest captures descriptors 1 and 2 while a case runs; a live display drawn through
    a duplicate keeps reaching the terminal. Streams without a descriptor (tests) are
    used as they are.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield _wide_when_piped(Console(file=stream))
        return
    duplicate = os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(
        stream, "encoding", None) or "utf-8", errors="replace")
    try:
        yield _wide_when_piped(Console(file=duplicate))
    finally:
        duplicate.close()


def _wide_when_piped(console: Console) -> Console:
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def stdout_console() -> Console:
    return _wide_when_piped(Console(file=sys.stdout))


def verdict_text(verdict: str, expectation: str | None = None) -> Text:
    text = Text()
    text.append(verdict.upper(), style=VERDICT_STYLES.get(verdict, "bold"))
    if expectation:
        text.append(f" ({expectation})", style="dim" if expectation == "expected" else "bold")
    return text


def first_line(message: str | None) -> str:
    return (message or "").strip().split("\n")[0]


def case_line(
    verdict: str, case: str, duration_s: float | None, message: str,
    expectation: str | None = None,
) -> Text:
    """`FAIL   rfc1122/test_x.py::test_y  0.31s  AssertionError: ...` for one finished case."""
    line = Text()
    line.append(f"{verdict.upper():<5}", style=VERDICT_STYLES.get(verdict, "bold"))
    line.append("  ")
    line.append(case)
    if duration_s is not None:
        line.append(f"  {duration_s:.2f}s", style="dim")
    if expectation:
        line.append(f"  [{expectation}]", style="dim" if expectation == "expected" else "bold")
    if message:
        line.append(f"  {first_line(message)}")
    return line


class _CaseProgress(Progress):
    """The bar, and under it the case that is running (cropped to the terminal's width)."""

    running = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.running:
            yield Text(self.running, style="dim", no_wrap=True, overflow="ellipsis")


class RunProgress:
    """A live progress bar (cases done / total, the case running) above one line per case.

    The bar is drawn on terminals only."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = _CaseProgress(
            SpinnerColumn(),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            # pytest swaps sys.stdout and sys.stderr while a case runs: leave them alone.
            redirect_stdout=False,
            redirect_stderr=False,
            disable=not console.is_terminal,  # in a log, the case lines say it all
        )
        self._task: TaskID | None = None
        self._stopped = False
        self._running: list[str] = []

    def start(self, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("", total=total)
        else:
            self._progress.update(self._task, total=total)

    def case_started(self, case: str) -> None:
        self._running.append(case)
        self._show_running()

    def case_finished(
        self, case: str, verdict: str, duration_s: float | None, message: str,
        expectation: str | None = None, *, running_as: str | None = None,
    ) -> None:
        with contextlib.suppress(ValueError):
            self._running.remove(running_as or case)
        self._progress.console.print(
            case_line(verdict, case, duration_s, message, expectation), soft_wrap=True
        )
        if self._task is not None:
            self._progress.advance(self._task)
        self._show_running()

    def _show_running(self) -> None:
        if self._task is None:
            return
        running = f"running {self._running[-1]}" if self._running else ""
        if len(self._running) > 1:
            running += f" (+{len(self._running) - 1} more)"
        self._progress.running = running
        self._progress.refresh()

    def stop(self) -> None:
        """Remove the bar; the case lines stay. Safe to call more than once."""
        if self._task is not None and not self._stopped:
            self._stopped = True
            self._progress.stop()


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_run_summary(console: Console, results: Mapping[str, Any], directory: Path) -> None:
    """Verdict counts, the cases that did not pass, and where the evidence is."""
    run = results.get("run", {})
    cases: list[dict[str, Any]] = list(results.get("cases", []))
    counts: dict[str, int] = run.get("verdicts") or {}
    table = Table(title=f"{run.get('target', '?')}: {len(cases)} cases", box=box.SIMPLE_HEAD)
    table.add_column("verdict")
    table.add_column("cases", justify="right")
    for verdict in (*VERDICT_ORDER, *sorted(set(counts) - set(VERDICT_ORDER))):
        if counts.get(verdict):
            table.add_row(verdict_text(verdict), str(counts[verdict]))
    console.print(table)

    rank = {verdict: index for index, verdict in enumerate(VERDICT_ORDER)}
    others = sorted(
        (case for case in cases if case.get("verdict") != "pass"),
        key=lambda case: (rank.get(case.get("verdict", ""), -1), case.get("id", "")),
    )
    if others:
        table = Table(title="verdicts other than pass", box=box.SIMPLE_HEAD, show_lines=False)
        table.add_column("verdict", no_wrap=True)
        table.add_column("case / message", overflow="fold")
        table.add_column("evidence", overflow="fold")
        for case in others:
            evidence = case.get("evidence")
            described = Text(case.get("id", "?"))
            if first_line(case.get("message")):
                described.append(f"\n{first_line(case.get('message'))}", style="dim")
            table.add_row(
                verdict_text(case.get("verdict", "?"), case.get("expectation")),
                described,
                Text(_relative(directory / evidence) if evidence else ""),
            )
        console.print(table)
    if run.get("interrupted"):
        console.print(Text("The run was interrupted: these results are partial.", style="bold"))
    if run.get("wireshark") is False:
        console.print(Text("Wireshark's dissectors did not read the captures (--no-wireshark): "
                           "no wireshark.* observations, no frame rejected by them."))
    where = Text("Evidence: ")
    where.append(_relative(directory), style="bold")
    where.append(" (results.json, junit.xml, a .pcapng and a .json per case)")
    console.print(where, soft_wrap=True)


def render_case_list(console: Console, cases: Sequence[Mapping[str, Any]]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("case", overflow="fold", min_width=36)
    table.add_column("requirements", overflow="fold")
    table.add_column("level", no_wrap=True)
    table.add_column("intent", min_width=24)
    for case in cases:
        level = Text(case["level"])
        if case.get("slow"):
            level.append(" (slow)", style="dim")
        table.add_row(
            Text(case["id"]), Text(", ".join(case["requirements"])), level, Text(case["doc"])
        )
    console.print(table)
    console.print(Text(f"{len(cases)} cases", style="dim"))


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(", ", ": "))


def _arguments(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={_compact(value)}" for name, value in args.items())


def render_case(
    console: Console, document: Mapping[str, Any], directory: Path,
    summaries: Mapping[str, str],
) -> None:
    """One case's evidence: verdict, requirements, message, observations, calls, frames."""
    console.print(Text(document.get("id", "?"), style="bold"), soft_wrap=True)
    header = Table.grid(padding=(0, 2))
    header.add_column(style="dim", no_wrap=True)
    header.add_column(overflow="fold")
    header.add_row("verdict", verdict_text(document.get("verdict", "?"),
                                           document.get("expectation")))
    header.add_row("level", Text(str(document.get("level", "?"))))
    requirements = Text()
    for index, requirement in enumerate(document.get("requirements") or []):
        if index:
            requirements.append("\n")
        requirements.append(requirement, style="bold")
        if requirement in summaries:
            requirements.append(f"  {summaries[requirement]}")
    header.add_row("requirements", requirements)
    if document.get("doc"):
        header.add_row("intent", Text(document["doc"]))
    if document.get("target"):
        header.add_row("target", Text(str(document["target"])))
    if document.get("duration_s") is not None:
        header.add_row("duration", Text(f"{document['duration_s']:.3f} s"))
    header.add_row("message", Text(document.get("message") or "-"))
    console.print(header)

    observations: Mapping[str, Any] = document.get("observations") or {}
    if observations:
        table = Table(title="observations", box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in observations.items():
            table.add_row(Text(name), Text(_compact(value)))
        console.print(table)

    calls: Sequence[Mapping[str, Any]] = document.get("calls") or []
    if calls:
        table = Table(title="DUT calls", box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("call", no_wrap=True)
        table.add_column("args", overflow="fold")
        table.add_column("outcome", no_wrap=True)
        table.add_column("value", overflow="fold")
        for call in calls:
            outcome = str(call.get("outcome", "?"))
            table.add_row(
                str(call.get("sequence", "")), Text(str(call.get("call", "?"))),
                Text(_arguments(call.get("args") or {})),
                Text(outcome, style=OUTCOME_STYLES.get(outcome, "")),
                Text(_compact(call.get("value"))),
            )
        console.print(table)

    frames: Sequence[Mapping[str, Any]] = document.get("frames") or []
    console.print(Text(f"capture: {len(frames)} frames", style="bold"))
    wireshark = expert_messages_by_frame(document.get("observations") or {})
    for frame in frames:
        sender = str(frame.get("sender", "?"))
        line = Text(f"{frame.get('number', '?'):>4}  {frame.get('time_s', 0.0):10.6f}  ")
        line.append(f"{sender:<6}", style="cyan" if sender == "dut" else "")
        line.append(f"  {frame.get('summary', '')}")
        if frame.get("comment"):
            line.append(f"  # {frame['comment']}", style="dim")
        if frame.get("number") in wireshark:
            line.append(f"  [Wireshark: {wireshark[frame['number']]}]", style="yellow")
        console.print(line, soft_wrap=True)
    evidence = document.get("evidence")
    if evidence:
        where = Text("pcapng: ")
        where.append(str((directory / evidence).resolve()), style="bold")
        console.print(where, soft_wrap=True)


Status = Literal["ok", "missing", "warn", "info"]
STATUS_STYLES = {"ok": "green", "missing": "bold red", "warn": "yellow", "info": "blue"}


@dataclass(frozen=True)
class Check:
    """One line of `conformance doctor`."""

    name: str
    status: Status
    detail: str
    required: bool = False


def render_doctor(console: Console, checks: Sequence[Check]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("facility", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in checks:
        name = Text(check.name)
        if check.required:
            name.append(" (required)", style="dim")
        table.add_row(name, Text(check.status, style=STATUS_STYLES[check.status]),
                      Text(check.detail))
    console.print(table)


KIND_STYLES = {"same": "green", "allowed": "blue", "deviation": "bold red",
               "differs": "yellow", "only A": "dim", "only B": "dim"}


def render_comparison(console: Console, comparison: Comparison) -> None:
    """Case by case: both verdicts, the kind of difference, the observations that differ."""
    table = Table(title=f"A: {comparison.label_a}    B: {comparison.label_b}",
                  box=box.SIMPLE_HEAD, show_lines=False)
    table.add_column("case")
    table.add_column("A")
    table.add_column("B")
    table.add_column("kind")
    table.add_column("note")
    table.add_column("observations that differ (A / B)")
    for case in comparison.cases:
        differences = "\n".join(f"{name}: {_compact(a)} / {_compact(b)}"
                                 for name, (a, b) in case.differences.items())
        table.add_row(Text(case.id), verdict_text(case.verdict_a or "-"),
                      verdict_text(case.verdict_b or "-"),
                      Text(case.kind, style=KIND_STYLES.get(case.kind, "")), Text(case.note),
                      Text(differences))
    console.print(table)
    console.print(", ".join(f"{kind}: {count}" for kind, count in comparison.counts().items()))


COVERAGE_STYLES = {"covered": "green", "uncovered": "dim", "gap": "bold red"}


def render_coverage(console: Console, coverage: Coverage) -> None:
    """Requirement by requirement, grouped by RFC: level, summary, the cases or the reason
    none covers it; then what the catalogue and the cases disagree on, and the counts."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("requirement", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("cases, or why none", overflow="fold", min_width=36)
    table.add_column("summary", overflow="fold", min_width=24)
    rfc = None
    for requirement in coverage.requirements:
        if requirement.rfc != rfc:
            if rfc is not None:
                table.add_section()
            rfc = requirement.rfc
        status = requirement.status
        if status == "covered":
            detail = Text("\n".join(requirement.cases))
            if requirement.stale_reason:
                detail.append(f"\nstale reason in the catalogue: {requirement.uncovered}",
                              style="bold yellow")
        elif status == "uncovered":
            detail = Text(f"uncovered: {requirement.uncovered}", style="dim")
        else:
            detail = Text("GAP: no case, and no `uncovered` reason", style="bold red")
        table.add_row(Text(requirement.id, style="bold" if status == "gap" else ""),
                      Text(requirement.level), Text(status, style=COVERAGE_STYLES[status]),
                      detail, Text(requirement.summary))
    console.print(table)

    gaps = coverage.with_status("gap")
    if gaps:
        console.print(Text(f"Gaps ({len(gaps)}): no case and no reason in the catalogue",
                           style="bold red"))
        for requirement in gaps:
            console.print(Text(f"  {requirement.id}  {requirement.level}  {requirement.summary}"),
                          soft_wrap=True)
    if coverage.unknown:
        console.print(Text("Requirement IDs the catalogue lacks", style="bold red"))
        for identifier, cases in coverage.unknown.items():
            console.print(Text(f"  {identifier}  named by {', '.join(cases)}"), soft_wrap=True)
    if coverage.unmarked:
        console.print(Text("Cases naming no requirement", style="bold red"))
        for case in coverage.unmarked:
            console.print(Text(f"  {case}"), soft_wrap=True)
    counts = coverage.counts()
    line = Text(f"{counts['requirements']} requirements: {counts['covered']} covered, "
                f"{counts['uncovered']} uncovered with a reason, ")
    line.append(f"{counts['gaps']} gaps", style="bold red" if counts["gaps"] else "green")
    extra = [f"{counts[key]} {label}" for key, label in (
        ("unknown_ids", "unknown IDs"), ("cases_without_requirements", "cases without IDs"),
        ("stale_reasons", "stale reasons")) if counts[key]]
    if extra:
        line.append("; " + ", ".join(extra), style="bold red")
    console.print(line, soft_wrap=True)
