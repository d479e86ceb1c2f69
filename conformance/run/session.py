"""A run of the suites: pytest in this process with the conformance plugin and a monitor
plugin (`RunMonitor`) that draws progress and notes what went wrong outside the cases;
SIGINT and SIGTERM, the labs left behind, and the exit policy (ARCHITECTURE.md,
"Verdicts"). `compare --targets` runs each target as a child `conformance run`.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from rich.console import Console

from conformance.errors import EnvironmentProblem, UsageError
from conformance.lab.netns import LAB_PREFIX, Lab, cleanup_labs, list_labs, remove_live_labs
from conformance.report.compare import Comparison, compare_results
from conformance.report.console import RunProgress
from conformance.run import layout
from conformance.run.spec import RunSpec, workers_for
from conformance.run.workers import WorkerServer
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_USAGE

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C
CHILD_EXIT_WAIT_S = 2.0
# pytest in this process: only the plugins the tool needs (not whatever else is installed),
# no cache directory, and no terminal reporter (the console module draws instead).
# Plain asserts: without the terminal plugin, pytest's rewritten asserts lose their
# message; a case's own message (and, lacking one, its source line) is the verdict's.
# pytest's unraisableexception plugin runs gc.collect() five times as each process ends
# (about 0.3 s of CPU apiece, on the run's tail): a run reports no pytest warnings.
PYTEST_ISOLATION = ("--disable-plugin-autoload", "-p", "conformance.plugin",
                    "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:unraisableexception",
                    "--assert=plain")


class RunEnded(Exception):
    """The run stops with `exit_code`, saying `message` (None: someone already said why)."""

    def __init__(self, message: str | None, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _display_id(nodeid: str) -> str:
    """A case ID from a pytest node ID (relative to the suites directory)."""
    return nodeid.removeprefix("suites/")


class RunMonitor:
    """A pytest plugin: drives the progress display and notes what went wrong outside
    the cases (collection errors, internal errors, interrupts)."""

    def __init__(self, progress: RunProgress | None) -> None:
        self.progress = progress
        self.collection_errors: list[tuple[str, str]] = []
        self.internal_error: BaseException | None = None
        self.interrupt_requested = False
        self._durations: dict[str, float] = {}
        self._failed: set[str] = set()
        self._started = False

    # SIGINT can land while pyroute2 forks, inside an at-fork handler, where CPython
    # swallows the KeyboardInterrupt; the flag lets the next hook raise it again.
    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupt_requested = True
        raise KeyboardInterrupt

    def _raise_if_interrupted(self) -> None:
        if self.interrupt_requested:
            raise KeyboardInterrupt

    def _start(self, total: int) -> None:
        self._started = True
        if self.progress is not None:
            self.progress.start(total)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append((report.nodeid, report.longreprtext))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:
            self._start(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self._started:  # every worker collects the same cases
            self._start(len(ids))

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._raise_if_interrupted()
        if self.progress is not None:
            self.progress.case_started(_display_id(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._durations[report.nodeid] = self._durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self._failed.add(report.nodeid)
        # pytest-xdist reports a case whose worker died in a phase of its own.
        crashed = report.when not in ("setup", "call", "teardown")
        if report.when == "teardown" or crashed:
            duration = self._durations.pop(report.nodeid, None)
            failed = report.nodeid in self._failed
            self._failed.discard(report.nodeid)
            entry = self._conformance_entry(report)
            if self.progress is not None:
                self.progress.case_finished(
                    entry.get("id") or _display_id(report.nodeid),
                    entry.get("verdict") or ("error" if failed else "pass"),
                    duration,
                    entry.get("message") or (report.longreprtext if crashed else ""),
                    entry.get("expectation"),
                    running_as=_display_id(report.nodeid),
                )
        self._raise_if_interrupted()

    @staticmethod
    def _conformance_entry(report: pytest.TestReport) -> dict[str, Any]:
        for name, value in report.user_properties:
            if name == "conformance":
                entry: dict[str, Any] = json.loads(str(value))
                return entry
        return {}

    def pytest_keyboard_interrupt(self) -> None:
        self.stop()

    def pytest_internalerror(
        self, excrepr: object, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> bool | None:
        self.stop()
        self.internal_error = excinfo.value
        if self.expected_internal_error() is not None:
            return True  # one line from the CLI instead of a traceback
        return None

    def expected_internal_error(self) -> tuple[BaseException, int] | None:
        """The environment or usage problem behind an internal error, with its exit status."""
        error: BaseException | None = self.internal_error
        while error is not None:
            if isinstance(error, EnvironmentProblem):
                return error, EXIT_ENVIRONMENT
            if isinstance(error, UsageError):
                return error, EXIT_USAGE
            error = error.__cause__ or error.__context__
        return None

    def pytest_sessionfinish(self) -> None:
        self.stop()


def run_exit_status(status: int, monitor: RunMonitor) -> int:
    """The CLI's exit status for pytest's exit status (which the plugin set from verdicts)."""
    if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return status
    if status in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        return EXIT_USAGE
    if status == pytest.ExitCode.INTERRUPTED:
        # pytest also reports a suite module that cannot be imported as "interrupted".
        return EXIT_FAIL if monitor.collection_errors else EXIT_INTERRUPTED
    if status == pytest.ExitCode.INTERNAL_ERROR:
        expected = monitor.expected_internal_error()
        return expected[1] if expected is not None else EXIT_FAIL
    return EXIT_FAIL


def _wait_for_children(timeout: float) -> None:
    """Reap this process's exited children, waiting at most `timeout` for the rest.

    An interrupted pyroute2 call can leave its forked helper running; the helper may
    still create a namespace, so labs are looked for again after it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)  # bounded poll: there is no event for "a child exited"


def remove_leftover_labs(*, interrupted: bool) -> list[str]:
    """Remove every lab of this process, and stale ones (pytest-xdist workers that died).

    After an interrupt, pyroute2 helpers forked by this process are waited for first."""
    own = f"{LAB_PREFIX}{os.getpid()}-"
    removed: list[str] = []

    def remove_own() -> None:
        remove_live_labs()
        for name in list_labs():
            if name.startswith(own):
                Lab(name).remove()  # created, but never registered: interrupted in create()
                removed.append(name)

    remove_own()
    if interrupted:
        _wait_for_children(CHILD_EXIT_WAIT_S)
        remove_own()
    removed.extend(cleanup_labs())
    return removed


@contextlib.contextmanager
def _sigint_handled_by(monitor: RunMonitor) -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    # Leave an inherited SIG_IGN (a background job) alone.
    install = previous is signal.default_int_handler
    if install:
        signal.signal(signal.SIGINT, monitor.on_sigint)
    try:
        yield
    finally:
        if install:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def pytest_args(spec: RunSpec, workers: int = 1, server: WorkerServer | None = None) -> list[str]:
    """pytest's command line for `spec`: the suites, the plugin given the spec, and
    pytest's own selection (-k) and parallelism (pytest-xdist, with `workers`: forked
    from `server`, or new interpreters without one)."""
    args = [str(layout.SUITES_ROOT), *map(str, spec.suites), *PYTEST_ISOLATION,
            "--run-spec", spec.to_json()]
    if spec.keyword:
        args += ["-k", spec.keyword]
    if workers > 1 and server is not None:
        args += ["-p", "xdist.plugin", "--dist", "load",
                 "--tx", f"{workers}*popen//python={server.python}"]
    elif workers > 1:
        args += ["-p", "xdist.plugin", "-n", str(workers)]
    return args


class _CountCases:
    """A pytest plugin that counts the cases a collection selects."""

    def __init__(self) -> None:
        self.cases = 0

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.cases = len(session.items)


def collect(spec: RunSpec) -> int:
    """Collect the cases `spec` selects, in this process: how many. The suites and all
    they import are imported then, for the run's own collection and its workers."""
    counter = _CountCases()
    pytest.main([*pytest_args(spec), "--collect-only", "-p", "no:terminal"],
                plugins=[counter])
    return counter.cases


def workers_of(spec: RunSpec) -> int:
    """The workers the run uses: the spec's, or as many as the selected cases keep busy
    (collected once here, in this process, which the run's own collection then reuses)."""
    if spec.workers is not None:
        return spec.workers
    return workers_for(collect(spec), wireshark=spec.wireshark)


def start_worker_server(spec: RunSpec) -> WorkerServer | None:
    """The process a parallel run's pytest-xdist workers fork from
    (conformance.run.workers), forked before this process collects the suites: it
    collects them too, on the other core, at the same time. None when the spec asks for
    one worker."""
    if spec.workers == 1:
        return None
    return WorkerServer.start(lambda: collect(spec))


@dataclass
class Outcome:
    """How a run ended: its exit status, the suite modules pytest could not collect, and
    either why it ends without results (`ended`) or the text of its results.json."""

    code: int
    collection_errors: list[tuple[str, str]] = field(default_factory=list)
    ended: RunEnded | None = None
    results: str | None = None


def run_suites(spec: RunSpec, console: Console) -> Outcome:
    """Run the suites as `spec` says (placed: its directory known), drawing progress on
    `console`; no lab outlives it."""
    directory = spec.directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {directory}: {error.strerror}") from error
    monitor = RunMonitor(RunProgress(console))
    status: int = pytest.ExitCode.INTERNAL_ERROR
    server: WorkerServer | None = None
    try:
        server = start_worker_server(spec)
        workers = workers_of(spec)
        if workers <= 1 and server is not None:
            server.kill()  # not needed: too few cases to share
            server = None
        with _sigint_handled_by(monitor):
            status = int(pytest.main(pytest_args(spec, workers, server), plugins=[monitor]))
    except KeyboardInterrupt:  # before the session began or after it ended
        status = pytest.ExitCode.INTERRUPTED
    finally:
        monitor.stop()
        with _sigint_ignored():  # a second Ctrl-C must not leave a lab behind
            if server is not None:
                server.close()  # its workers ended first: their labs are stale now
            remove_leftover_labs(interrupted=status not in (
                pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED))
    outcome = Outcome(run_exit_status(status, monitor), monitor.collection_errors)
    expected = monitor.expected_internal_error()
    if status == pytest.ExitCode.INTERNAL_ERROR and expected is not None:
        kind = "environment problem" if outcome.code == EXIT_ENVIRONMENT else "usage error"
        outcome.ended = RunEnded(f"{kind}: {expected[0]}", outcome.code)
    elif status == pytest.ExitCode.NO_TESTS_COLLECTED:
        hint = "" if spec.slow else " (cases marked slow run only with --slow)"
        keyword = f" -k {spec.keyword!r}" if spec.keyword else ""
        outcome.ended = RunEnded(f"no case matches{keyword}{hint}", EXIT_USAGE)
    elif outcome.code == EXIT_USAGE:
        outcome.ended = RunEnded(None, EXIT_USAGE)  # pytest said why on stderr
    elif (directory / "results.json").exists() and not monitor.collection_errors:
        outcome.results = (directory / "results.json").read_text()
    return outcome


def _run_in_child(spec: RunSpec, label: str, echo: Callable[[str], None]) -> int:
    """`conformance run` of `spec`, as a child process whose output is this one's; its
    evidence ends in `<run directory>/label/`. Its exit status."""
    run_directory = spec.directory.parent
    # The plugin writes to <out>/<target>: a target that comes twice runs in a staging
    # directory, and its files move to <out>/<label> afterwards.
    staged = spec if label == spec.target else replace(spec, out=run_directory / f".{label}")
    command = [sys.executable, "-m", "conformance.cli", "run", "--spec", staged.to_json()]
    # The child runs this very code, wherever it was imported from.
    source = str(Path(__file__).resolve().parents[2])
    inherited = os.environ.get("PYTHONPATH")
    child = subprocess.Popen(command, env={
        **os.environ, "PYTHONPATH": source + (os.pathsep + inherited if inherited else "")})

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        with _sigint_ignored():  # Ctrl-C reaches the child too; it removes its labs
            status = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if staged is not spec and staged.directory.is_dir():
        destination = run_directory / label
        destination.mkdir(exist_ok=True)
        layout.purge_run_files(destination)
        for path in staged.directory.iterdir():
            path.replace(destination / path.name)
        staged.directory.rmdir()
        staged.directory.parent.rmdir()
        echo(f"(moved from {staged.directory} to {destination}: {spec.target} runs twice)")
    return status


def compare_targets(
    specs: list[RunSpec], out: Path | None, echo: Callable[[str], None]
) -> tuple[Path, Comparison, list[str]]:
    """Each spec's run in turn, into one run directory (`out`, or a new one), each as
    `conformance run` would, and their comparison: the run directory, the comparison,
    and the cases that ended in error. RunEnded when a run is interrupted, meets a usage
    or environment problem, or leaves no results."""
    run_directory = (out if out is not None else layout.new_run_directory()).resolve()
    targets = [spec.target for spec in specs]
    labels = layout.target_labels(targets)
    for spec, label in zip(specs, labels, strict=True):
        echo(f"== {spec.target}: {run_directory / label}")
        status = _run_in_child(replace(spec, out=run_directory), label, echo)
        if status == EXIT_INTERRUPTED:
            raise RunEnded(f"interrupted during the run against {spec.target}; "
                           "no comparison", EXIT_INTERRUPTED)
        if status in (EXIT_USAGE, EXIT_ENVIRONMENT):
            raise RunEnded(None, status)  # the run said why on stderr
        if not (run_directory / label / "results.json").exists():
            raise RunEnded(f"the run against {spec.target} left no results "
                           f"(exit status {status})", EXIT_FAIL)
    results = [json.loads((run_directory / label / "results.json").read_text())
               for label in labels]
    comparison = compare_results(*results)
    if labels != targets:  # the same target twice
        comparison = replace(
            comparison, label_b=comparison.label_b.replace(targets[1], labels[1], 1))
    erred = [f"{label}: {case['id']}" for label, result in zip(labels, results, strict=True)
             for case in result["cases"] if case["verdict"] == "error"]
    return run_directory, comparison, erred
