"""The `conformance` command: run, list, coverage, show, compare, doctor, cleanup.

Exit status (ARCHITECTURE.md, "Verdicts"): 0 no fail and no error; 1 a fail, an error, or
an expectation that no longer holds (also: a suite module that cannot be collected);
2 a usage error, including a selection that matches no case; 3 an environment problem
(no CAP_NET_ADMIN, no /dev/net/tun, no network namespaces); 130 the run was interrupted
(SIGINT, or SIGTERM which the plugin turns into an interrupt), after its labs are removed.

`run` and `list` run pytest in this process, with the conformance plugin and a monitor
plugin (`RunMonitor`) that draws progress and records what went wrong outside the cases.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

import click
import pytest

from conformance import __version__
from conformance.errors import EnvironmentProblem, HarnessError, UsageError
from conformance.report.console import (
    Check,
    RunProgress,
    render_case,
    render_case_list,
    render_comparison,
    render_coverage,
    render_doctor,
    render_run_summary,
    stdout_console,
    terminal_console,
)
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_USAGE

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C
CAP_NET_ADMIN = 12  # bit in the capability sets of /proc/self/status
RUNS_DIRECTORY = Path("pcaps/runs")
CHILD_EXIT_WAIT_S = 2.0
# pytest in this process: only the plugins the tool needs (not whatever else is installed),
# no cache directory, and no terminal reporter (the console module draws instead).
# Plain asserts: without the terminal plugin, pytest's rewritten asserts lose their
# message; a case's own message (and, lacking one, its source line) is the verdict's.
PYTEST_ISOLATION = ("--disable-plugin-autoload", "-p", "conformance.plugin",
                    "-p", "no:cacheprovider", "-p", "no:terminal", "--assert=plain")


class Failure(click.ClickException):
    """An expected error: one message on stderr, no traceback, a chosen exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"conformance: {self.format_message()}", file=file, err=file is None)


def fail(message: str, exit_code: int) -> NoReturn:
    raise Failure(message, exit_code)


class ConformanceGroup(click.Group):
    """Turns the project's error types into exit statuses (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise Failure(str(error), EXIT_USAGE) from error
        except EnvironmentProblem as error:
            raise Failure(f"environment problem: {error}", EXIT_ENVIRONMENT) from error
        except HarnessError as error:
            raise Failure(f"harness error: {error}", EXIT_FAIL) from error


@click.group(cls=ConformanceGroup)
@click.version_option(__version__, "--version", prog_name="conformance",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Packet-level conformance tests of TCP/UDP/IPv4 stacks (RFC 768, 1122, 1191, 9293).

    Exit status: 0 no fail and no error, 1 a fail or an error, 2 usage error,
    3 environment problem, 130 interrupted.
    """


def main() -> None:
    cli(prog_name="conformance")


# --- the environment -------------------------------------------------------------------


def _has_net_admin() -> bool:
    """CAP_NET_ADMIN in the effective set (root has it unless a container dropped it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def privilege_check() -> Check:
    name = "root / CAP_NET_ADMIN"
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if _has_net_admin():
        return Check(name, "ok", f"{who}, CAP_NET_ADMIN effective", required=True)
    remedy = ("the container or the parent process dropped it" if os.geteuid() == 0
              else "run as root (sudo)")
    return Check(name, "missing", f"{who} without CAP_NET_ADMIN, which network namespaces "
                 f"and TAP devices need: {remedy}", required=True)


def tun_check() -> Check:
    name, tun = "/dev/net/tun", Path("/dev/net/tun")
    if not tun.exists():
        return Check(name, "missing", "/dev/net/tun is missing (modprobe tun; in a container, "
                     "pass the device in)", required=True)
    try:
        os.close(os.open(tun, os.O_RDWR))
    except OSError as error:
        return Check(name, "missing", f"cannot open /dev/net/tun: {error.strerror}",
                     required=True)
    return Check(name, "ok", "present and openable", required=True)


def namespace_support_check() -> Check:
    name = "network namespace support"
    if not Path("/proc/self/ns/net").exists():
        return Check(name, "missing", "the kernel has no network namespaces "
                     "(/proc/self/ns/net is missing)", required=True)
    return Check(name, "ok", "/proc/self/ns/net present", required=True)


def environment_problem() -> str | None:
    """Why this machine cannot build a lab, or None; checked before a run starts."""
    for check in (privilege_check(), tun_check(), namespace_support_check()):
        if check.status == "missing":
            return check.detail
    return None


# --- run -------------------------------------------------------------------------------


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
        if report.when == "teardown":
            duration = self._durations.pop(report.nodeid, None)
            failed = report.nodeid in self._failed
            self._failed.discard(report.nodeid)
            entry = self._conformance_entry(report)
            if self.progress is not None:
                self.progress.case_finished(
                    entry.get("id") or _display_id(report.nodeid),
                    entry.get("verdict") or ("error" if failed else "pass"),
                    duration,
                    entry.get("message") or "",
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


def _check_sysctls(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    for assignment in values:
        name, equals, _ = assignment.partition("=")
        if not equals or not name.startswith("net."):
            raise click.BadParameter(
                f"{assignment}: want net.NAME=VALUE (only per-namespace net.* settings, "
                "set inside the DUT namespace; the host is never changed)"
            )
    return values


def _check_ref_settings(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from stack.settings import Settings

    overrides = {}
    for assignment in values:
        name, equals, value = assignment.partition("=")
        if not equals:
            raise click.BadParameter(f"{assignment}: want NAME=VALUE")
        overrides[name] = value
    try:
        Settings.with_overrides(overrides)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    return values


def target_options(target: str, sysctls: tuple[str, ...], settings: tuple[str, ...]) -> list[str]:
    """The run options that configure `target`: sysctls for linux, settings for ref."""
    options: list[str] = []
    for assignment in sysctls if target == "linux" else ():
        options += ["--sysctl", assignment]
    for assignment in settings if target == "ref" else ():
        options += ["--ref-setting", assignment]
    return options


def _new_run_directory() -> Path:
    """pcaps/runs/<YYYYmmdd-HHMMSS>, suffixed -2, -3, ... when a run already took it."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 100):
        candidate = RUNS_DIRECTORY / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise UsageError(f"cannot create {candidate}: {error.strerror}") from error
        return candidate
    raise UsageError(f"cannot find a free run directory name under {RUNS_DIRECTORY}")


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
    from conformance.lab.netns import LAB_PREFIX, Lab, cleanup_labs, list_labs, remove_live_labs

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


@cli.command()
@click.option("--target", default="ref", show_default=True, metavar="NAME",
              help="The device under test: ref (the reference stack) or linux.")
@click.option("-k", "keyword", metavar="EXPR",
              help="Only cases whose name matches EXPR (pytest -k syntax).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: pcaps/runs/<YYYYmmdd-HHMMSS>].")
@click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
              callback=_check_sysctls,
              help="linux: set a net.* sysctl inside the DUT namespace (repeatable).")
@click.option("--ref-setting", "ref_settings", multiple=True, metavar="NAME=VALUE",
              callback=_check_ref_settings,
              help="ref: set a reference-stack setting, e.g. min_pmtu=68 (repeatable; "
              "stack/settings.py lists them).")
@click.option("--slow", is_flag=True, help="Also run cases marked slow.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cases run in parallel (pytest-xdist), each in its own lab.")
@click.option("--expectations", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Known deviations [default: suites/expectations/<target>.toml].")
@click.option("--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Requirement catalogue [default: suites/requirements/].")
@click.option("--json", "as_json", is_flag=True,
              help="Print results.json on stdout instead of the summary.")
@click.pass_context
def run(
    ctx: click.Context, target: str, keyword: str | None, out: Path | None,
    sysctls: tuple[str, ...], ref_settings: tuple[str, ...], slow: bool, workers: int,
    expectations: Path | None, catalogue: Path | None, as_json: bool,
) -> None:
    """Run the suites against a target and keep the evidence of every case."""
    from conformance.expectations import load_expectations
    from conformance.plugin import SUITES_ROOT
    from conformance.requirements.catalogue import Catalogue, default_catalogue_path
    from conformance.targets import get_target

    # Usage first: a wrong command line is wrong on any machine.
    get_target(target)
    if sysctls and target != "linux":
        raise UsageError("--sysctl applies to the linux target only")
    if ref_settings and target != "ref":
        raise UsageError("--ref-setting applies to the ref target only")
    Catalogue.load(catalogue or default_catalogue_path())
    if expectations is not None:
        load_expectations(expectations)
    problem = environment_problem()
    if problem is not None:
        raise EnvironmentProblem(problem)

    run_directory = out if out is not None else _new_run_directory()
    directory = run_directory.resolve() / target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {directory}: {error.strerror}") from error

    args = [str(SUITES_ROOT), "--target", target, "--out", str(run_directory), *PYTEST_ISOLATION]
    args += target_options(target, sysctls, ref_settings)
    if keyword:
        args += ["-k", keyword]
    if slow:
        args.append("--slow")
    if expectations is not None:
        args += ["--expectations", str(expectations)]
    if catalogue is not None:
        args += ["--catalogue", str(catalogue)]
    if workers > 1:
        args += ["-p", "xdist.plugin", "-n", str(workers)]

    with terminal_console(sys.stderr if as_json else sys.stdout) as console:
        monitor = RunMonitor(RunProgress(console))
        status: int = pytest.ExitCode.INTERNAL_ERROR
        try:
            with _sigint_handled_by(monitor):
                status = int(pytest.main(args, plugins=[monitor]))
        except KeyboardInterrupt:  # before the session began or after it ended
            status = pytest.ExitCode.INTERRUPTED
        finally:
            monitor.stop()
            with _sigint_ignored():  # a second Ctrl-C must not leave a lab behind
                remove_leftover_labs(interrupted=status not in (
                    pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED))
        code = run_exit_status(status, monitor)

        for nodeid, text in monitor.collection_errors:
            click.echo(f"conformance: cannot collect {nodeid or 'the suites'}:\n{text}", err=True)
        expected = monitor.expected_internal_error()
        if status == pytest.ExitCode.INTERNAL_ERROR and expected is not None:
            kind = "environment problem" if code == EXIT_ENVIRONMENT else "usage error"
            fail(f"{kind}: {expected[0]}", code)
        if status == pytest.ExitCode.NO_TESTS_COLLECTED:
            hint = "" if slow else " (cases marked slow run only with --slow)"
            fail(f"no case matches{f' -k {keyword!r}' if keyword else ''}{hint}", EXIT_USAGE)
        if code == EXIT_USAGE:
            ctx.exit(code)  # pytest said why on stderr

        results_path = directory / "results.json"
        if results_path.exists() and not monitor.collection_errors:
            if as_json:
                click.echo(results_path.read_text())
            else:
                console.print()
                render_run_summary(console, json.loads(results_path.read_text()), directory)
        if code == EXIT_INTERRUPTED:
            click.echo("conformance: interrupted; the labs of this run are removed", err=True)
    ctx.exit(code)


# --- list ------------------------------------------------------------------------------


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
    keyword: str | None, catalogue_path: Path | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The cases of the suites (selected by `keyword`), without running any: no lab, no
    privilege. Each: id, requirements, level (the strictest), doc, slow. Also the cases'
    disagreements with the catalogue, which `run` would refuse."""
    from conformance.plugin import SUITES_ROOT, case_id, requirement_ids
    from conformance.requirements.catalogue import Catalogue, default_catalogue_path

    catalogue = Catalogue.load(catalogue_path or default_catalogue_path())
    collector = _Collector()
    args = [str(SUITES_ROOT), "--collect-only", *PYTEST_ISOLATION]
    if keyword:
        args += ["-k", keyword]
    status = pytest.main(args, plugins=[collector])
    if collector.errors:
        text = "\n".join(f"{nodeid}:\n{longrepr}" for nodeid, longrepr in collector.errors)
        fail(f"cannot collect the suites:\n{text}", EXIT_FAIL)
    if status == pytest.ExitCode.USAGE_ERROR:
        raise click.exceptions.Exit(EXIT_USAGE)  # pytest said why on stderr
    if status == pytest.ExitCode.NO_TESTS_COLLECTED and keyword:
        fail(f"no case matches -k {keyword!r}", EXIT_USAGE)
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        fail(f"collecting the suites failed (pytest exit status {status})", EXIT_FAIL)

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
        doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
        cases.append({
            "id": identifier, "requirements": requirements, "level": level,
            "doc": doc.split("\n")[0], "slow": item.get_closest_marker("slow") is not None,
        })
    return cases, problems


@cli.command("list")
@click.option("-k", "keyword", metavar="EXPR", help="Only cases whose name matches EXPR.")
@click.option("--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Requirement catalogue [default: suites/requirements/].")
@click.option("--json", "as_json", is_flag=True, help="Print the cases as JSON.")
def list_cases(keyword: str | None, catalogue: Path | None, as_json: bool) -> None:
    """List the cases (ID, requirements, level, intent) without running them."""
    cases, problems = collect_cases(keyword, catalogue)
    if as_json:
        click.echo(json.dumps(cases, indent=2))
    else:
        render_case_list(stdout_console(), cases)
    if problems:
        fail("the catalogue and the cases disagree:\n  " + "\n  ".join(problems), EXIT_USAGE)


# --- coverage --------------------------------------------------------------------------


@cli.command()
@click.option("--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Requirement catalogue [default: suites/requirements/].")
@click.option("-k", "keyword", metavar="EXPR",
              help="Count only the cases whose name matches EXPR (pytest -k syntax).")
@click.option("--rfc", "rfcs", multiple=True, metavar="RFC",
              help="Only the requirements of this RFC, e.g. RFC1122 or 1122, or another "
              "ID prefix of the catalogue such as API (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the coverage as JSON.")
def coverage(catalogue: Path | None, keyword: str | None, rfcs: tuple[str, ...],
             as_json: bool) -> None:
    """Each requirement of the catalogue, by RFC and section: its level, the cases that
    check it or the catalogue's reason why none does, and the gaps.

    A gap is a requirement with neither a case nor an `uncovered` reason. Exit status 1
    when there is a gap, a case names an ID the catalogue lacks or no ID at all, or the
    catalogue gives a reason for a requirement that cases do cover; 0 otherwise, 2 for
    usage errors. With -k, only the selected cases count.
    """
    from conformance.report.coverage import build_coverage, normalise_rfc
    from conformance.requirements.catalogue import Catalogue, default_catalogue_path

    loaded = Catalogue.load(catalogue or default_catalogue_path())
    known_rfcs = {requirement.rfc for requirement in loaded.requirements.values()}
    for rfc in rfcs:
        if normalise_rfc(rfc) not in known_rfcs:
            raise UsageError(f"--rfc {rfc}: the catalogue has no requirement of "
                             f"{normalise_rfc(rfc)} (it has: {', '.join(sorted(known_rfcs))})")
    cases, _ = collect_cases(keyword, catalogue)  # disagreements: counted by build_coverage
    result = build_coverage(loaded, cases, rfcs)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        render_coverage(stdout_console(), result)
    if not result.complete:
        fail(f"coverage is incomplete: {result.problem_summary()}", EXIT_FAIL)


# --- show ------------------------------------------------------------------------------


def _holds_results(directory: Path) -> bool:
    return (directory / "results.json").exists() or any(
        path.name != "results.json" for path in directory.glob("*.json")
    )


def latest_run() -> Path:
    runs = sorted(path for path in RUNS_DIRECTORY.glob("*") if path.is_dir()) \
        if RUNS_DIRECTORY.is_dir() else []
    if not runs:
        raise UsageError(f"no run under {RUNS_DIRECTORY}; name one with --run DIR")
    return runs[-1]


def target_directory(run_directory: Path, target: str | None) -> Path:
    """`run_directory` itself when it holds results, else its `<target>/` subdirectory."""
    if target is not None and (run_directory / target).is_dir():
        return run_directory / target
    if _holds_results(run_directory):
        return run_directory
    targets = sorted(path.name for path in run_directory.iterdir()
                     if path.is_dir() and _holds_results(path))
    if target is not None:
        raise UsageError(f"{run_directory} has no results for target {target!r} "
                         f"(it has: {', '.join(targets) or 'none'})")
    if not targets:
        raise UsageError(f"{run_directory} holds no results (no results.json, no case files)")
    if len(targets) > 1:
        raise UsageError(f"{run_directory} holds several targets ({', '.join(targets)}): "
                         "choose one with --target")
    return run_directory / targets[0]


def case_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """Each case's JSON by case ID; results.json entries stand in for missing files."""
    from conformance.evidence.writer import read_case_documents

    documents = {document["id"]: document for document in read_case_documents(directory)}
    results = directory / "results.json"
    if results.exists():
        for case in json.loads(results.read_text()).get("cases", []):
            documents.setdefault(case["id"], case)
    return documents


def pick_case(query: str, identifiers: list[str]) -> str:
    """The case ID equal to `query`, or the only one containing it."""
    query = query.removeprefix("suites/")
    if query in identifiers:
        return query
    matches = sorted(identifier for identifier in identifiers if query in identifier)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listed = "\n  ".join(sorted(identifiers)) or "(none)"
        raise UsageError(f"no case matches {query!r}; the cases are:\n  {listed}")
    listed = "\n  ".join(matches)
    raise UsageError(f"{query!r} matches {len(matches)} cases; say which:\n  {listed}")


def _requirement_summaries() -> dict[str, str]:
    from conformance.requirements.catalogue import Catalogue, default_catalogue_path

    try:
        catalogue = Catalogue.load(default_catalogue_path())
    except UsageError:
        return {}  # the evidence is shown without summaries
    return {key: requirement.summary for key, requirement in catalogue.requirements.items()}


@cli.command()
@click.argument("case")
@click.option("--run", "run_directory", type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Run directory, or one target's directory in it "
              "[default: the latest under pcaps/runs].")
@click.option("--target", metavar="NAME", help="Which target of the run.")
def show(case: str, run_directory: Path | None, target: str | None) -> None:
    """Show one case of a run: verdict, observations, DUT calls and the frames.

    CASE is a case ID or any part of one that names a single case.
    """
    directory = target_directory(run_directory or latest_run(), target)
    documents = case_documents(directory)
    document = documents[pick_case(case, list(documents))]
    render_case(stdout_console(), document, directory, _requirement_summaries())


# --- compare ---------------------------------------------------------------------------


def _results_of(run_directory: Path) -> dict[str, Any]:
    directory = target_directory(run_directory, None)
    path = directory / "results.json"
    if not path.exists():
        raise UsageError(f"{directory} has no results.json (was the run interrupted early?)")
    results: dict[str, Any] = json.loads(path.read_text())
    return results


def _split_targets(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    targets = [name.strip() for name in value.split(",")]
    if len(targets) != 2 or not all(targets):
        raise click.BadParameter(f"{value}: want two targets, A,B (e.g. linux,ref)")
    return targets


def target_labels(targets: list[str]) -> list[str]:
    """The directory of each target in the run: its name, suffixed -2 when it comes twice."""
    labels: list[str] = []
    for target in targets:
        label, number = target, 1
        while label in labels:
            number += 1
            label = f"{target}-{number}"
        labels.append(label)
    return labels


def _run_in_child(target: str, label: str, run_directory: Path, options: list[str]) -> int:
    """`conformance run` against one target, as a child process whose output is this
    one's; its evidence ends in `run_directory/label/`. Its exit status."""
    # The plugin writes to <out>/<target>: a target that comes twice runs in a staging
    # directory, and its files move to <out>/<label> afterwards.
    out = run_directory if label == target else run_directory / f".{label}"
    command = [sys.executable, "-m", "conformance.cli", "run", "--target", target,
               "--out", str(out), *options]
    # The child runs this very code, wherever it was imported from.
    source = str(Path(__file__).resolve().parents[1])
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
    if out != run_directory and (out / target).is_dir():
        destination = run_directory / label
        destination.mkdir(exist_ok=True)
        for pattern in ("*.json", "*.pcapng", "junit.xml"):
            for stale in destination.glob(pattern):
                stale.unlink()
        for path in (out / target).iterdir():
            path.replace(destination / path.name)
        (out / target).rmdir()
        out.rmdir()
        click.echo(f"(moved from {out / target} to {destination}: {target} runs twice)")
    return status


def _compare_targets(
    ctx: click.Context, targets: list[str], out: Path | None, options: list[str],
    catalogue: Path | None, sysctls: tuple[str, ...], ref_settings: tuple[str, ...],
) -> None:
    from conformance.report.compare import compare_results, write_comparison
    from conformance.requirements.catalogue import Catalogue, default_catalogue_path
    from conformance.targets import get_target

    for target in targets:  # usage first, before any lab
        get_target(target)
    Catalogue.load(catalogue or default_catalogue_path())
    problem = environment_problem()
    if problem is not None:
        raise EnvironmentProblem(problem)

    run_directory = (out if out is not None else _new_run_directory()).resolve()
    labels = target_labels(targets)
    for target, label in zip(targets, labels, strict=True):
        click.echo(f"== {target}: {run_directory / label}")
        status = _run_in_child(target, label, run_directory,
                               options + target_options(target, sysctls, ref_settings))
        if status == EXIT_INTERRUPTED:
            fail(f"interrupted during the run against {target}; no comparison",
                 EXIT_INTERRUPTED)
        if status in (EXIT_USAGE, EXIT_ENVIRONMENT):
            ctx.exit(status)  # the run said why on stderr
        if not (run_directory / label / "results.json").exists():
            fail(f"the run against {target} left no results (exit status {status})",
                 EXIT_FAIL)

    results = [json.loads((run_directory / label / "results.json").read_text())
               for label in labels]
    comparison = compare_results(*results)
    if labels[0] != targets[0] or labels[1] != targets[1]:  # the same target twice
        comparison = dataclasses.replace(
            comparison, label_b=comparison.label_b.replace(targets[1], labels[1], 1))
    json_path, markdown_path = write_comparison(run_directory, comparison)
    click.echo()
    render_comparison(stdout_console(), comparison)
    click.echo(f"Written: {json_path}, {markdown_path}")
    erred = [f"{label}: {case['id']}" for label, result in zip(labels, results, strict=True)
             for case in result["cases"] if case["verdict"] == "error"]
    if erred:
        fail("cases ended in error (harness or environment), so their comparison says "
             "nothing about the targets:\n  " + "\n  ".join(erred), EXIT_FAIL)


@cli.command()
@click.argument("run_a", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--targets", metavar="A,B", callback=_split_targets,
              help="Run the suites against targets A and B first, then compare the runs.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where compare.json and compare.md go [default: beside RUN_B]; with "
              "--targets, the run directory [default: pcaps/runs/<YYYYmmdd-HHMMSS>].")
@click.option("-k", "keyword", metavar="EXPR",
              help="With --targets: only cases whose name matches EXPR (pytest -k syntax).")
@click.option("--slow", is_flag=True, help="With --targets: also run cases marked slow.")
@click.option("--workers", type=click.IntRange(min=1),
              help="With --targets: cases run in parallel (pytest-xdist) [default: 1].")
@click.option("--sysctl", "sysctls", multiple=True, metavar="NAME=VALUE",
              callback=_check_sysctls,
              help="With --targets: set a net.* sysctl inside the linux DUT's namespace.")
@click.option("--ref-setting", "ref_settings", multiple=True, metavar="NAME=VALUE",
              callback=_check_ref_settings,
              help="With --targets: set a reference-stack setting for the ref DUT.")
@click.option("--catalogue", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --targets: requirement catalogue [default: suites/requirements/].")
@click.pass_context
def compare(
    ctx: click.Context, run_a: Path | None, run_b: Path | None, targets: list[str] | None,
    out: Path | None, keyword: str | None, slow: bool, workers: int | None,
    sysctls: tuple[str, ...], ref_settings: tuple[str, ...], catalogue: Path | None,
) -> None:
    """Compare two runs case by case: verdicts, and the observations that differ.

    \b
    conformance compare RUN_A RUN_B
    conformance compare --targets A,B [-k EXPR] [--slow] [--out DIR] ...

    RUN_A and RUN_B are run directories (or one target's directory in them). With
    --targets, the suites run against A and then B, each as `conformance run` would, into
    one run directory with a subdirectory per target (`linux-2/` for a target named
    twice), and the comparison goes there too.

    Each case is `same`; `allowed` (a difference the RFCs allow: the same verdict with
    different observations, a MAY checked on one side and observed as info on the other,
    timings beyond 25 %); `deviation` (one side fails, warns or errs, the other not);
    `differs` (any other difference, such as pass against n/a); `only A` or `only B`.
    compare.md lists the deviations first.

    Exit status: 0 when the comparison is written, whatever the verdicts (deviations
    are what it reports, not errors). With --targets: a run's usage error (2) or
    environment problem (3) stops everything and is the exit status; 130 when
    interrupted; 1 when a run leaves no results or a case ends in `error`.
    """
    from conformance.report.compare import compare_results, write_comparison

    run_options = {"-k": keyword, "--slow": slow or None, "--workers": workers,
                   "--sysctl": sysctls or None, "--ref-setting": ref_settings or None,
                   "--catalogue": catalogue}
    if targets is not None:
        if run_a is not None or run_b is not None:
            raise click.UsageError("give either RUN_A RUN_B or --targets A,B, not both")
        options: list[str] = []
        if keyword:
            options += ["-k", keyword]
        if slow:
            options.append("--slow")
        if workers is not None:
            options += ["--workers", str(workers)]
        if catalogue is not None:
            options += ["--catalogue", str(catalogue.resolve())]
        _compare_targets(ctx, targets, out, options, catalogue, sysctls, ref_settings)
        return
    if run_a is None or run_b is None:
        raise click.UsageError("compare needs two runs (RUN_A RUN_B) or --targets A,B")
    given = [name for name, value in run_options.items() if value is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --targets")

    comparison = compare_results(_results_of(run_a), _results_of(run_b))
    directory = out or target_directory(run_b, None).parent
    json_path, markdown_path = write_comparison(directory, comparison)
    render_comparison(stdout_console(), comparison)
    click.echo(f"Written: {json_path}, {markdown_path}")


# --- doctor ----------------------------------------------------------------------------


def namespace_check() -> Check:
    from conformance.lab.netns import Lab

    name = "network namespaces"
    try:
        lab = Lab.create()
    except Exception as error:  # a probe: any failure is the answer
        return Check(name, "missing", f"cannot create one: {error}", required=True)
    try:
        lab.remove()
    except Exception as error:
        return Check(name, "missing", f"created {lab.name} but cannot remove it: {error}",
                     required=True)
    return Check(name, "ok", f"created and removed {lab.name}", required=True)


def tshark_check() -> Check:
    path = shutil.which("tshark")
    if path is None:
        return Check("tshark", "warn", "not found: needed only to cross-check evidence "
                     "with Wireshark's dissectors (apt install tshark)")
    try:
        completed = subprocess.run([path, "--version"], capture_output=True, text=True,
                                   timeout=20, check=False)
        version = completed.stdout.strip().split("\n")[0]
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("tshark", "warn", f"{path}: cannot run it: {error}")
    return Check("tshark", "ok", f"{path}: {version}")


def _package_version(package: str) -> Check:
    try:
        return Check(package, "info", metadata.version(package))
    except metadata.PackageNotFoundError:
        return Check(package, "missing", "not installed", required=True)


@cli.command()
def doctor() -> None:
    """Check what this machine offers: privileges, TUN, namespaces, tshark, versions."""
    from conformance.lab.netns import list_labs

    checks = [privilege_check(), tun_check(), namespace_support_check()]
    if checks[0].status == "ok":
        checks.append(namespace_check())
    else:
        checks.append(Check("network namespaces", "missing", "not tried: needs CAP_NET_ADMIN",
                            required=True))
    checks.append(tshark_check())
    labs = list_labs()
    checks.append(Check("labs present", "info", f"{len(labs)}" + (
        " (stale ones go with `conformance cleanup`)" if labs else "")))
    checks.append(Check("kernel", "info", platform.release()))
    checks.append(Check("python", "info", f"{platform.python_version()} ({sys.executable})"))
    checks.append(Check("conformance", "info", __version__))
    checks.extend(_package_version(package) for package in (
        "scapy", "pyroute2", "pytest", "pytest-xdist", "rich", "click"))
    render_doctor(stdout_console(), checks)
    missing = [check for check in checks if check.required and check.status == "missing"]
    if missing:
        fail(f"environment problem: {missing[0].name}: {missing[0].detail}", EXIT_ENVIRONMENT)


# --- cleanup ---------------------------------------------------------------------------


@cli.command()
@click.option("--all", "everything", is_flag=True,
              help="Remove every lab, including those of runs still going.")
def cleanup(everything: bool) -> None:
    """Remove labs left by killed runs (their owner process is gone)."""
    from conformance.lab.netns import cleanup_labs, list_labs

    try:
        removed = cleanup_labs(everything=everything)
    except OSError as error:
        raise EnvironmentProblem(f"cannot remove labs: {error} (run as root)") from error
    for name in removed:
        click.echo(f"removed {name}")
    remaining = list_labs()
    if not removed:
        click.echo("no stale labs")
    if remaining:
        click.echo(f"{len(remaining)} labs belong to running processes "
                   f"({', '.join(remaining)}); --all removes them too")


if __name__ == "__main__":
    main()
