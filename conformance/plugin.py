"""The pytest plugin: fixtures `dut` and `tb`, the `requirement` marker, verdicts, evidence.

Loaded through the `pytest11` entry point; it stays inert until `--target` is given.
Each case gets its own lab. Verdicts are decided on whichever process ran the case
(pytest-xdist workers included) and written with the evidence; the controlling process
gathers the per-case files into `results.json` and `junit.xml` at the end.
"""

import contextlib
import datetime
import json
import os
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import __version__
from conformance.agent.client import Unsupported, describe_exit
from conformance.errors import HarnessError, UsageError
from conformance.evidence.record import CaseRecord
from conformance.evidence.wireshark import (
    WIRESHARK_OBSERVATIONS,
    WiresharkUnavailable,
    observe_wireshark_view,
)
from conformance.evidence.writer import (
    UNFINISHED,
    case_file_stem,
    discard_unfinished_cases,
    mark_unfinished_case,
    read_case_documents,
    write_case_evidence,
)
from conformance.expectations import Deviation, judge_expectation
from conformance.lab.netns import Lab, cleanup_labs, install_exit_handlers, remove_live_labs
from conformance.report.results import gather_results, write_junit, write_results
from conformance.requirements.catalogue import Catalogue
from conformance.run import layout
from conformance.run.cases import (
    case_doc,
    case_id,
    case_id_of_node,
    frame_choices,
    marker_problems,
    requirement_ids,
)
from conformance.run.durations import longest_first, reference_durations
from conformance.run.spec import RunSpec, build_spec, in_shard
from conformance.targets import get_target
from conformance.targets.base import StartedDut, TargetOptions
from conformance.targets.dut import Dut
from conformance.targets.external import parse_agent
from conformance.targets.linux import parse_sysctls
from conformance.targets.ref import parse_settings
from conformance.testbench.bench import StepFailed, Testbench
from conformance.verdicts import Verdict, exit_status_of, verdict_for_level
from conformance.wire.capture import Capture, DutFlooded


@dataclass
class CaseState:
    """One case on its way to a verdict."""

    record: CaseRecord
    started: float = field(default_factory=time.perf_counter)
    body_s: float = 0.0  # the case itself; the rest of its duration is its lab's
    verdict: Verdict | None = None
    message: str = ""
    death: str | None = None  # how the DUT's agent died during the case, if it did
    flood: str | None = None  # the DUT flooded the wire during the case, if it did


CASE_KEY = pytest.StashKey[CaseState]()
SELECTED_KEY = pytest.StashKey[list[str]]()
CRASHED_WORKER_WAIT_S = 2.0  # for the exit status of a worker pytest-xdist saw die


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--run-spec", metavar="JSON", help="the whole run as RunSpec JSON (how "
                    "`conformance run` starts pytest); the options below build one instead")
    group.addoption("--target", help="the DUT: ref or linux")
    group.addoption("--out", help="run directory (default pcaps/runs/<run-id>)")
    group.addoption("--sysctl", action="append", default=[], metavar="NAME=VALUE",
                    help="set a net.* sysctl inside the DUT namespace (never on the host)")
    group.addoption("--ref-setting", action="append", default=[], metavar="NAME=VALUE",
                    help="set a reference-stack setting (stack/settings.py)")
    group.addoption("--ref-patch", action="append", default=[], metavar="FILE:FUNCTION",
                    help="apply FUNCTION(host) from FILE to the reference stack before the "
                    "case (repeatable, applied in order): how the project's tests break it "
                    "on purpose")
    group.addoption("--agent", help="the external target's agent command line")
    group.addoption("--expectations", help="expectations file (default: "
                    "suites/expectations/<target>.toml)")
    group.addoption("--catalogue", help="requirement catalogue (default suites/requirements/)")
    group.addoption("--slow", action="store_true", help="also run cases marked slow")
    group.addoption("--no-wireshark", action="store_true", help="do not read the cases' "
                    "captures with Wireshark's dissectors (no wireshark.* observations)")
    group.addoption("--msl", type=float, default=30.0, metavar="SECONDS",
                    help="the Maximum Segment Lifetime TIME-WAIT is judged against "
                    "(default 30: Linux's 60 s TIME-WAIT; RFC 9293 suggests 120)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requirement(*ids): the requirement IDs a case checks")
    config.addinivalue_line("markers", "slow: a case that takes minutes; run with --slow")
    config.addinivalue_line("markers", "choices(*aspects): frame aspects (frame.psh, ...) "
                            "the RFCs leave to the DUT in this case")
    if not config.getoption("target") and not config.getoption("run_spec"):
        return
    config.stash[CONFIG_KEY] = run = RunConfig.from_pytest(config)
    layout.EXTRA_SUITES[:] = list(run.spec.suites)
    install_exit_handlers()


def _spec_from_options(config: pytest.Config) -> RunSpec:
    """The run pytest's own command line asks for (no `--run-spec`), built and checked
    as `conformance run` builds its own."""
    out = config.getoption("out") or getattr(config, "workerinput", {}).get("conformance_out")
    expectations, catalogue = config.getoption("expectations"), config.getoption("catalogue")
    try:
        sysctls = parse_sysctls(config.getoption("sysctl"))
    except UsageError as error:
        raise pytest.UsageError(f"--sysctl {error}") from error
    try:
        settings = parse_settings(config.getoption("ref_setting"))
    except UsageError as error:
        raise pytest.UsageError(f"--ref-setting {error}") from error
    try:
        agent = parse_agent(config.getoption("agent"))
    except UsageError as error:
        raise pytest.UsageError(str(error)) from error
    options = TargetOptions(sysctls, settings, tuple(config.getoption("ref_patch")), agent)
    return build_spec(
        str(config.getoption("target")), options,
        out=Path(out) if out else layout.RUNS_DIRECTORY / layout.run_stamp(),
        slow=bool(config.getoption("slow")),
        expectations=Path(expectations) if expectations else None,
        catalogue=Path(catalogue) if catalogue else None,
        wireshark=not config.getoption("no_wireshark"))


@dataclass(frozen=True)
class RunConfig:
    """The run's spec, with its catalogue and known deviations loaded."""

    spec: RunSpec
    catalogue: Catalogue
    deviations: dict[str, Deviation]

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def directory(self) -> Path:
        """<run dir>/<target>"""
        return self.spec.directory

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> "RunConfig":
        text = config.getoption("run_spec")
        try:
            spec = RunSpec.from_json(text) if text else _spec_from_options(config)
            get_target(spec.target)  # unknown target: usage error now, not in every case
            return cls(spec, spec.load_catalogue(), spec.load_deviations())
        except UsageError as error:
            raise pytest.UsageError(str(error)) from error


CONFIG_KEY = pytest.StashKey[RunConfig]()
STARTED_KEY = pytest.StashKey[str]()


def _run_config(config: pytest.Config) -> RunConfig | None:
    return config.stash.get(CONFIG_KEY, None)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    run = _run_config(config)
    if run is None:
        return
    problems = [problem for item in items for problem in marker_problems(item, run.catalogue)]
    if problems:
        raise pytest.UsageError("\n".join(problems))
    if not run.spec.slow:
        kept = [item for item in items if item.get_closest_marker("slow") is None]
        deselected = [item for item in items if item.get_closest_marker("slow") is not None]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
    if run.spec.shard is not None:
        chosen = in_shard([case_id(item) for item in items], run.spec.shard)
        deselected = [item for item in items if case_id(item) not in chosen]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if case_id(item) in chosen]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist hands out cases in this order: the longest first, so the run ends
        # near the longest case's end.
        order = longest_first([case_id(item) for item in items],
                              reference_durations(run.target))
        items[:] = [items[index] for index in order]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Parallel runs hand out the longest cases first (conformance.run.scheduling)."""
    if _run_config(config) is None:
        return None
    from conformance.run.scheduling import LongestFirstScheduling  # needs pytest-xdist
    return LongestFirstScheduling(config, log)


def pytest_runtest_setup(item: pytest.Item) -> None:
    run = _run_config(item.config)
    if run is None:
        return
    ids = requirement_ids(item)
    record = CaseRecord(
        case_id=case_id(item), target=run.target, requirements=ids,
        level=run.catalogue.level_of(ids), choices=frame_choices(item),
    )
    item.stash[CASE_KEY] = CaseState(record)
    # In place until the verdict replaces it: a tester that dies mid-case leaves the case
    # as an error in results.json, not a gap (the controller adds how the worker died).
    write_case_evidence(run.directory, record, {
        "doc": case_doc(item), "verdict": Verdict.ERROR.value, "expectation": None,
        "message": f"the case did not finish: {_tester_name(item.config)} died during it",
        "duration_s": None, "lab_s": None, UNFINISHED: True,
    })


def _tester_name(config: pytest.Config) -> str:
    worker = getattr(config, "workerinput", {}).get("workerid")
    where = f"the pytest-xdist worker {worker}" if worker else "the tester"
    return f"{where} (pid {os.getpid()}) running it"


@dataclass
class CaseContext:
    dut: Dut
    tb: Testbench
    record: CaseRecord


@pytest.fixture
def conformance_case(request: pytest.FixtureRequest) -> Iterator[CaseContext]:
    """A fresh lab with the target's DUT on it, for one case; removed on every path."""
    run = _run_config(request.config)
    if run is None:
        raise HarnessError("conformance cases need --target (use `conformance run`)")
    state = request.node.stash[CASE_KEY]
    record = state.record
    target = get_target(run.target)
    lab = Lab.create()
    started: StartedDut | None = None
    capture: Capture | None = None
    try:
        started = target.start(lab, run.spec.options)
        tb = Testbench.on_wire(started.wire, record, dut=started.host,
                               barrier_grace_s=started.barrier_grace_s)
        capture = tb.capture
        record.environment["sysctls_applied"] = run.spec.options.sysctls
        record.environment["ref_settings_applied"] = run.spec.options.settings
        record.environment["agent_hello"] = started.hello
        yield CaseContext(Dut(started.agent, record, started.host), tb, record)
    finally:
        try:
            if started is not None:
                # The agent's snapshot: the DUT's sockets and the settings that matter.
                record.environment["dut"] = started.snapshot()
        finally:
            if capture is not None:
                capture.stop()
                record.frames = list(capture.frames)
                if isinstance(capture.failure, DutFlooded):
                    state.flood = str(capture.failure)
            if started is not None:
                started.stop()
                record.agent_log = started.agent.stderr_text
                state.death = started.agent.death
            lab.remove_soon()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A case whose checks held ends on a positive control: the DUT must still answer an
    echo request. A DUT that hears nothing, or died during the case, never passes."""
    state = item.stash.get(CASE_KEY, None)
    began = time.perf_counter()
    try:
        yield
        context = getattr(item, "funcargs", {}).get("conformance_case")
        if isinstance(context, CaseContext):
            context.tb.pass_barrier(context.tb.echo_barrier(),
                                    "the DUT is still answering at the end of the case")
    finally:
        if state is not None:
            state.body_s = time.perf_counter() - began


@pytest.fixture
def dut(conformance_case: CaseContext) -> Dut:
    return conformance_case.dut


@pytest.fixture
def tb(conformance_case: CaseContext) -> Testbench:
    return conformance_case.tb


@pytest.fixture
def msl(request: pytest.FixtureRequest) -> float:
    """The Maximum Segment Lifetime, in seconds, that TIME-WAIT is judged against."""
    return float(request.config.getoption("msl"))


def describe_observations(record: CaseRecord) -> str:
    """The case's own named observations (not the automatic call.*, expect.* and
    wireshark.* ones)."""
    return ", ".join(
        f"{name}={json.dumps(value)}" for name, value in record.observations.items()
        if not name.startswith(("call.", "expect.", WIRESHARK_OBSERVATIONS))
    )


def _exception_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(excinfo.value).strip()
    if not text and isinstance(excinfo.value, AssertionError):
        # An assert without a message: the failing statement says what was checked.
        text = str(excinfo.traceback[-1].statement).strip()
    return f"{excinfo.typename}: {text}" if text else excinfo.typename


def _judge_phase(
    state: CaseState, when: str, call: pytest.CallInfo[None], catalogue: Catalogue
) -> None:
    """Fold one phase's outcome into the case's verdict."""
    excinfo = call.excinfo
    if excinfo is None:
        if when == "call":
            state.verdict = verdict_for_level(state.record.level, held=True)
        return
    if isinstance(excinfo.value, Unsupported) or excinfo.errisinstance(pytest.skip.Exception):
        state.verdict = Verdict.NOT_APPLICABLE
        state.message = str(getattr(excinfo.value, "msg", None) or excinfo.value)
    elif when == "call" and isinstance(excinfo.value, StepFailed):
        # Judged at the level of the requirement the failed step embodies.
        level = catalogue.get(excinfo.value.requirement).level
        state.verdict = (Verdict.NOT_APPLICABLE if level == "MAY"
                         else verdict_for_level(level, held=False))
        state.message = _exception_message(excinfo)
    elif when == "call" and isinstance(excinfo.value, AssertionError):
        state.verdict = verdict_for_level(state.record.level, held=False)
        state.message = _exception_message(excinfo)
    else:
        # Anything else, and any failure to set up or tear down the lab, is the
        # harness's fault, never the DUT's.
        problem = _exception_message(excinfo)
        if when != "call":
            problem = f"{when}: {problem}"
        state.message = "\n".join(part for part in (problem, state.message) if part)
        state.verdict = Verdict.ERROR


# Verdicts that a DUT frame Wireshark rejects raises to warn: the case's own checks held
# (or did not apply), but the DUT put a frame on the wire that no receiver can read.
RAISED_BY_A_REJECTED_FRAME = frozenset({Verdict.PASS, Verdict.INFO, Verdict.NOT_APPLICABLE})


def _with_wireshark_view(run: RunConfig, state: CaseState, verdict: Verdict) -> Verdict:
    """Wireshark's view of the case's frames becomes its `wireshark.*` observations. A DUT
    frame that Wireshark calls malformed or whose checksum it rejects (RFC 1122 3.2.1.2,
    RFC 768, RFC 9293 3.1) makes the case at least warn, naming the frame; a capture it
    could not read makes the case an error (the evidence is incomplete)."""
    try:
        rejected = observe_wireshark_view(state.record, run.directory)
    except WiresharkUnavailable as error:
        state.record.observations[f"{WIRESHARK_OBSERVATIONS}unavailable"] = str(error)
        state.message = "\n".join(part for part in (
            state.message, f"Wireshark's view of the capture is missing: {error}") if part)
        return Verdict.ERROR
    if not rejected:
        return verdict
    state.message = "\n".join(part for part in (
        state.message, "Wireshark rejects frames of the DUT: " + "; ".join(rejected)) if part)
    return Verdict.WARN if verdict in RAISED_BY_A_REJECTED_FRAME else verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = _run_config(item.config)
    state = item.stash.get(CASE_KEY, None)
    if run is None or state is None:
        return report
    _judge_phase(state, call.when, call, run.catalogue)
    if call.when == "teardown" and state.death is not None:
        # Whatever the case concluded, it concluded about a DUT that was no longer there.
        state.verdict = Verdict.ERROR
        state.message = "\n".join(part for part in (
            f"the agent died during the case: {state.death}", state.message) if part)
    if call.when == "teardown" and state.flood is not None and state.flood not in state.message:
        # The case's checks saw a capture that stopped holding the DUT's frames.
        state.verdict = Verdict.ERROR
        state.message = "\n".join(part for part in (
            f"DutFlooded: {state.flood}", state.message) if part)
    if call.when == "teardown":
        verdict = state.verdict or Verdict.ERROR
        if run.spec.wireshark:
            verdict = _with_wireshark_view(run, state, verdict)
        expectation, note = judge_expectation(state.record.case_id, verdict, run.deviations)
        if verdict == Verdict.INFO and not state.message:
            state.message = "observed: " + (describe_observations(state.record) or "nothing")
        message = "\n".join(part for part in (state.message, note) if part)
        duration = time.perf_counter() - state.started
        entry = {
            "doc": case_doc(item),
            "verdict": verdict.value,
            "message": message,
            "expectation": expectation,
            "duration_s": round(duration, 3),
            # Setting up and removing the case's lab and DUT: the harness's share.
            "lab_s": round(duration - state.body_s, 3),
        }
        write_case_evidence(run.directory, state.record, entry)
        report.user_properties.append(("conformance", json.dumps(
            {"id": state.record.case_id, "verdict": verdict.value, "expectation": expectation,
             "level": state.record.level, "message": message.split("\n")[0]}
        )))
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """pytest-xdist, on the controller: a worker died running `crashitem`. Its case stays
    an error (the document written at its set-up) and says how the worker ended."""
    run = _run_config(report.node.config) if hasattr(report, "node") else None
    if run is None:
        return
    worker = report.node
    how = "crashed"
    popen = getattr(getattr(worker.gateway, "_io", None), "popen", None)  # execnet's child
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            how = describe_exit(popen.wait(timeout=CRASHED_WORKER_WAIT_S), who="it")
    mark_unfinished_case(run.directory, case_id_of_node(worker.config.rootpath, crashitem),
                         f"the case did not finish: the pytest-xdist worker "
                         f"{worker.gateway.id} running it died ({how})")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: every worker writes into the same run directory."""
    run = _run_config(node.config)
    if run is not None:
        node.workerinput["conformance_out"] = str(run.directory.parent)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    INTERRUPTED.append(True)


INTERRUPTED: list[bool] = []


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """pytest-xdist, on the controller: the cases selected (every worker collects the same)."""
    if _run_config(node.config) is not None:
        node.config.stash.setdefault(
            SELECTED_KEY, [case_id_of_node(node.config.rootpath, nodeid) for nodeid in ids])


def write_cases_never_run(run: RunConfig, selected: list[str]) -> None:
    """A case pytest-xdist never handed out (it gave up replacing dead workers) is still a
    case of the run: an error, so that results.json lists every selected case."""
    for identifier in selected:
        if (run.directory / f"{case_file_stem(identifier)}.json").exists():
            continue  # its document: a verdict, or unfinished (an error already)
        record = CaseRecord(case_id=identifier, target=run.target, requirements=[], level="")
        write_case_evidence(run.directory, record, {
            "doc": "", "verdict": Verdict.ERROR.value, "expectation": None,
            "message": "the case never ran: the run ended before a worker took it",
            "duration_s": None, "lab_s": None,
        })


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    run = _run_config(session.config)
    if run is None or not _is_controller(session.config) or session.config.option.collectonly:
        return
    session.config.stash[STARTED_KEY] = datetime.datetime.now(datetime.UTC).isoformat()
    cleanup_labs()  # labs left by a killed run
    run.directory.mkdir(parents=True, exist_ok=True)
    layout.purge_run_files(run.directory)


def target_facts(run: RunConfig, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The target's own description, with what its agent said of itself in `hello`
    (lwIP's build options, ...) as the first case that started it recorded."""
    facts = get_target(run.target).describe()
    if run.spec.options.agent:
        facts["agent_command"] = list(run.spec.options.agent)
    for document in documents:
        hello = document.get("environment", {}).get("agent_hello")
        if hello:
            facts["agent_hello"] = hello
            break
    return facts


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    remove_live_labs()  # the labs still queued for removal (Lab.remove_soon), in each worker
    run = _run_config(session.config)
    if run is None or not _is_controller(session.config) or session.config.option.collectonly:
        return
    cleanup_labs()  # labs of workers that died
    if INTERRUPTED:
        discard_unfinished_cases(run.directory)
    else:
        write_cases_never_run(run, session.config.stash.get(SELECTED_KEY, []))
    documents = read_case_documents(run.directory)  # once: 5 MB of JSON in a full run
    run_info = {
        "target": run.target,
        "started": session.config.stash.get(STARTED_KEY, None),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(),
        "tool_version": __version__,
        "kernel_release": os.uname().release,
        "target_facts": target_facts(run, documents),
        "sysctls_applied": run.spec.options.sysctls,
        "ref_settings_applied": run.spec.options.settings,
        "ref_patch": list(run.spec.options.patches),
        "interrupted": bool(INTERRUPTED),
        "shard": None if run.spec.shard is None else "{}/{}".format(*run.spec.shard),
        "wireshark": run.spec.wireshark,
    }
    results = gather_results(run_info, documents)
    write_results(run.directory, results)
    write_junit(run.directory, results)
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        session.exitstatus = exit_status_of(results["cases"])


