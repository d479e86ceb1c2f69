"""`conformance agent-check` on the console: the checks, then what the agent supports.

Draws only; conformance/agent_check.py decides. Text from the agent (its stderr, its
reasons) is wrapped in `Text`, never read as markup.
"""

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conformance.agent_check import KINDS, AgentCheckReport, Probe

PROBE_STYLES = {
    "supported": "green",
    "unsupported": "dim",
    "errno": "yellow",
    "error": "red",
    "not probed": "dim",
}


def render_agent_check(console: Console, report: AgentCheckReport, target: str) -> None:
    """A row per check (failures with the end of the agent's stderr), the calls of hello,
    a table of socket options and one of ioctl requests by socket kind, the outcome."""
    checks = Table(title=f"agent {report.agent!r} (target {target})", box=box.SIMPLE_HEAD)
    checks.add_column("check", no_wrap=True)
    checks.add_column("result", no_wrap=True)
    checks.add_column("detail", overflow="fold")
    for check in report.checks:
        detail = Text(check.detail)
        if check.stderr_tail:
            detail.append("\nagent stderr (end):\n" + check.stderr_tail, style="dim")
        checks.add_row(
            check.name, Text("pass", "green") if check.passed else Text("FAIL", "bold red"), detail
        )
    console.print(checks)
    missing = report.missing_calls
    console.print(Text(f"calls ({len(report.calls)}): {' '.join(report.calls)}"))
    if missing:
        console.print(Text(f"lacks: {' '.join(missing)}", style="yellow"))
    console.print(_probe_table("socket option (getsockopt)", report.options))
    console.print(_probe_table("ioctl request", report.ioctls))
    failed = [check.name for check in report.checks if not check.passed]
    if failed:
        console.print(
            Text(
                f"{len(failed)} of {len(report.checks)} checks failed: {', '.join(failed)}",
                style="bold red",
            )
        )
    else:
        console.print(Text(f"all {len(report.checks)} checks passed", style="green"))


def _probe_table(title: str, probes: dict[str, dict[str, Probe]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column(title, no_wrap=True)
    for kind in KINDS:
        table.add_column(kind, overflow="fold")
    for name, by_kind in probes.items():
        cells = []
        for kind in KINDS:
            probe = by_kind.get(kind)
            if probe is None:  # the option does not apply to this kind of socket
                cells.append(Text("-", style="dim"))
                continue
            cell = Text(probe.outcome, style=PROBE_STYLES[probe.outcome])
            if probe.detail:
                cell.append(f" {probe.detail}")
            cells.append(cell)
        table.add_row(name, *cells)
    return table
