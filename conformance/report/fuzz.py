"""How a fuzzing run looks on the terminal: a progress bar while it runs (frames sent,
frames per second, liveness checks passed, the DUT's memory), then a summary."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.fuzz.session import FuzzSummary, MemorySample, OnProgress


def _memory(sample: MemorySample | None) -> str:
    if sample is None or sample.rss_kib is None:
        return "?"
    text = f"{sample.rss_kib / 1024:.1f} MiB"
    if sample.kernel:
        text += (f" (agent); namespace: {sample.kernel.get('tcp_inuse', 0)} TCP sockets, "
                 f"{sample.kernel.get('frag_memory', 0)} B in reassembly")
    return text


@contextmanager
def fuzz_progress(console: Console, total: int) -> Iterator[OnProgress]:
    """A progress bar (on terminals only) and the callback that advances it."""
    progress = Progress(TextColumn("fuzzing"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    task = progress.add_task("", total=total, status="")

    def update(summary: FuzzSummary) -> None:
        last = summary.memory[-1] if summary.memory else None
        progress.update(task, completed=summary.frames_sent, status=(
            f"{summary.frames_per_second:,.0f} frames/s, {summary.checks_passed} checks, "
            f"{_memory(last)}"))

    with progress:
        yield update


def peak_rss_kib(summary: FuzzSummary) -> int | None:
    values = [sample.rss_kib for sample in summary.memory if sample.rss_kib is not None]
    return max(values) if values else None


def render_fuzz_summary(console: Console, summary: FuzzSummary, directory: Path,
                        agent_log: str = "") -> None:
    table = Table(show_header=False, box=None)
    outcome = ("[green]alive[/green]: every liveness check passed" if summary.alive
               else f"[red]LIVENESS LOST[/red] after frame {summary.lost_after_frame}")
    rows: list[tuple[str, Any]] = [
        ("target", summary.target),
        ("replayed", summary.replayed) if summary.replayed else ("seed", summary.seed),
        ("outcome", outcome),
        ("frames sent", f"{summary.frames_sent:,} of {summary.frames_requested:,} "
                        f"({summary.frames_per_second:,.0f} per second, "
                        f"{summary.seconds:.1f} s)"),
        ("liveness checks", f"{summary.checks_passed} passed (echo, UDP, TCP with data)"),
        ("DUT frames", f"{summary.dut_frames:,}"),
        ("memory", f"start {_memory(summary.memory[0] if summary.memory else None)}; "
                   f"end {_memory(summary.memory[-1] if summary.memory else None)}; "
                   f"peak {(peak_rss_kib(summary) or 0) / 1024:.1f} MiB"),
    ]
    if summary.refused_by_the_wire:
        rows.append(("refused by the wire", summary.refused_by_the_wire))
    if summary.held_connection_failures:
        rows.append(("held connection", f"did not open in {summary.held_connection_failures} "
                                        f"of {summary.rounds} rounds"))
    if summary.loss:
        rows.append(("loss", summary.loss))
    if summary.reproducer:
        rows.append(("reproducer", summary.reproducer))
    rows.append(("summary", str(directory / "summary.json")))
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", str(value))
    console.print(table)
    if not summary.alive and agent_log.strip():
        console.print("[bold]the DUT's stderr (last lines)[/bold]")
        console.print("\n".join(agent_log.strip().splitlines()[-15:]), markup=False)
