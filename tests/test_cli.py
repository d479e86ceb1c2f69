"""The `conformance` command line.

Offline tests drive the click commands in this process (CliRunner) and need no privilege.
Privileged tests run the real command as a child process against the Linux target and
check what a user relies on: exit statuses, the evidence on disk, and that no lab and no
agent outlives a run, interrupted or not.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner
from rich.console import Console

import conformance.run.layout
from conformance import __version__, cli
from conformance.errors import EnvironmentProblem
from conformance.lab.netns import LAB_PREFIX
from conformance.report.console import RunProgress, case_line, render_run_summary
from conformance.run import session
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_OK, EXIT_USAGE
from tests.suite_runner import REPOSITORY

EXAMPLE_SUITE = "rfc1122/test_udp_icmp_errors.py"
CONNECTED_ON_SEND = f"{EXAMPLE_SUITE}::test_connected_socket_reports_port_unreachable_on_send"
HEARS_NOTHING = f"{EXAMPLE_SUITE}::test_unconnected_socket_hears_nothing_without_recverr"
WITH_RECVERR = f"{EXAMPLE_SUITE}::test_unconnected_socket_with_recverr_queues_the_error"
WIDE = {"COLUMNS": "400"}  # one table row per line, whatever the test's terminal
RUN_TIMEOUT_S = 300.0

def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args), env=WIDE, catch_exceptions=False)


# --- offline ---------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"conformance {__version__}"


def test_list_shows_the_example_suite_with_requirements_and_levels() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if "::" in line}
    assert CONNECTED_ON_SEND in rows
    assert "RFC1122-4.1.3.3a, RFC1122-3.2.2.1" in rows[CONNECTED_ON_SEND]
    assert " MUST " in rows[CONNECTED_ON_SEND]
    assert "reports ICMP port unreachable as ECONNREFUSED" in rows[CONNECTED_ON_SEND]
    assert "RFC1122-4.1.3.3b" in rows[HEARS_NOTHING]
    assert " MAY " in rows[HEARS_NOTHING]


def test_list_selects_with_k_and_prints_json() -> None:
    result = invoke("list", "-k", "unconnected_socket", "--json")
    assert result.exit_code == 0, result.output
    cases = {case["id"]: case for case in json.loads(result.stdout)}
    assert set(cases) >= {HEARS_NOTHING, WITH_RECVERR}
    assert all("unconnected_socket" in identifier for identifier in cases)
    assert cases[HEARS_NOTHING]["requirements"] == ["RFC1122-4.1.3.3b"]
    assert cases[HEARS_NOTHING]["level"] == "MAY"
    assert cases[WITH_RECVERR]["level"] == "MUST"
    assert cases[WITH_RECVERR]["doc"].startswith("With IP_RECVERR")


def test_list_with_no_match_is_a_usage_error() -> None:
    result = invoke("list", "-k", "no_case_is_named_like_this")
    assert result.exit_code == EXIT_USAGE
    assert "no case matches" in result.stderr


def test_list_builds_no_lab() -> None:
    result = invoke("list", "-k", "rfc1122")
    assert result.exit_code == 0, result.output
    assert not labs_of(os.getpid())


def use_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    """Point the tool at a suites directory made of `files` (module names stay unique:
    pytest imports them into this process)."""
    root = tmp_path / "suites"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(conformance.run.layout, "SUITES_ROOT", root)


def test_list_reports_a_suite_module_that_cannot_be_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_suites(tmp_path, monkeypatch, {
        "rfc768/test_cli_broken_module.py": "import no_such_module_anywhere\n",
    })
    result = invoke("list")
    assert result.exit_code == EXIT_FAIL
    assert "cannot collect" in result.stderr
    assert "no_such_module_anywhere" in result.stderr


CATALOGUE_DISAGREES = '''
from conformance.case import requirement


@requirement("RFC768-NOPE")
def test_unknown_requirement():
    """Names a requirement the catalogue lacks."""


def test_no_requirement():
    """Names none."""
'''


def test_list_shows_cases_the_catalogue_disagrees_with_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_suites(tmp_path, monkeypatch,
               {"rfc768/test_cli_catalogue_disagrees.py": CATALOGUE_DISAGREES})
    result = invoke("list")
    assert result.exit_code == EXIT_USAGE
    assert "rfc768/test_cli_catalogue_disagrees.py::test_unknown_requirement" in result.stdout
    assert "Names none." in result.stdout
    assert "unknown requirement ID 'RFC768-NOPE'" in result.stderr
    assert "test_no_requirement: no @requirement marker" in result.stderr


def test_run_rejects_an_unknown_target_before_anything_else() -> None:
    result = invoke("run", "--target", "nosuchstack")
    assert result.exit_code == EXIT_USAGE
    assert "unknown target 'nosuchstack' (known: external, " in result.stderr
    assert "linux, lwip, ref)" in result.stderr


def test_run_rejects_a_sysctl_outside_net() -> None:
    result = invoke("run", "--target", "linux", "--sysctl", "kernel.foo=1")
    assert result.exit_code == EXIT_USAGE
    assert "want net.NAME=VALUE" in result.stderr


def test_run_reports_a_missing_facility_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "environment_problem", lambda **_: "/dev/net/tun is missing")
    result = invoke("run", "--target", "linux")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert result.stderr == "conformance: environment problem: /dev/net/tun is missing\n"
    assert "Traceback" not in result.output


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege is checked first")
def test_run_without_tshark_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """Every case's capture is read with Wireshark's dissectors: no tshark, no run."""
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    result = invoke("run", "--target", "linux")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert result.stderr == ("conformance: environment problem: tshark not found: every "
                             "case's capture is read with Wireshark's dissectors "
                             "(apt install tshark)\n")


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_run_without_wireshark_needs_no_tshark(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--target", "ref", "--no-wireshark",
         "-k", "test_data_flows_both_ways", "--out", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **WIDE, "PATH": str(bare), "PYTHONPATH": str(REPOSITORY)})
    assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
    assert "Wireshark's dissectors did not read the captures (--no-wireshark)" in (
        completed.stdout)
    results = json.loads((tmp_path / "run" / "ref" / "results.json").read_text())
    assert results["run"]["wireshark"] is False
    assert [entry["verdict"] for entry in results["cases"]] == ["pass"]


@pytest.mark.parametrize(
    ("status", "internal_error", "expected"),
    [
        (pytest.ExitCode.OK, None, EXIT_OK),
        (pytest.ExitCode.TESTS_FAILED, None, EXIT_FAIL),
        (pytest.ExitCode.USAGE_ERROR, None, EXIT_USAGE),
        (pytest.ExitCode.NO_TESTS_COLLECTED, None, EXIT_USAGE),
        (pytest.ExitCode.INTERRUPTED, None, session.EXIT_INTERRUPTED),
        (pytest.ExitCode.INTERNAL_ERROR, RuntimeError("bug"), EXIT_FAIL),
        (pytest.ExitCode.INTERNAL_ERROR, EnvironmentProblem("no tun"), EXIT_ENVIRONMENT),
    ],
)
def test_exit_status_of_a_run(
    status: int, internal_error: BaseException | None, expected: int
) -> None:
    monitor = session.RunMonitor(progress=None)
    monitor.internal_error = internal_error
    assert session.run_exit_status(status, monitor) == expected


def test_an_environment_problem_behind_an_internal_error_counts() -> None:
    monitor = session.RunMonitor(progress=None)
    try:
        try:
            raise EnvironmentProblem("cannot create network namespace")
        except EnvironmentProblem as error:
            raise RuntimeError("sessionstart failed") from error
    except RuntimeError as error:
        monitor.internal_error = error
    assert session.run_exit_status(pytest.ExitCode.INTERNAL_ERROR, monitor) == EXIT_ENVIRONMENT


def test_a_suite_that_cannot_be_collected_is_not_an_interrupt() -> None:
    monitor = session.RunMonitor(progress=None)
    monitor.collection_errors.append(("suites/rfc768/test_x.py", "ImportError"))
    assert session.run_exit_status(pytest.ExitCode.INTERRUPTED, monitor) == EXIT_FAIL


def test_a_swallowed_interrupt_is_raised_again_at_the_next_case() -> None:
    monitor = session.RunMonitor(progress=None)
    with pytest.raises(KeyboardInterrupt):
        monitor.on_sigint(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        monitor.pytest_runtest_logstart("suites/rfc768/test_x.py::test_y", ("", None, ""))


def test_a_finished_case_prints_verdict_id_duration_and_first_message_line() -> None:
    line = case_line("fail", CONNECTED_ON_SEND, 0.314, "AssertionError: no error\nmore", None)
    assert line.plain == f"FAIL   {CONNECTED_ON_SEND}  0.31s  AssertionError: no error"
    assert str(line.spans[0].style) == "bold red"
    assert case_line("pass", "x", 1.0, "", "expected").plain == "PASS   x  1.00s  [expected]"


def test_progress_reads_the_verdict_from_the_teardown_report() -> None:
    printed: list[str] = []

    class Recorder(RunProgress):
        def __init__(self) -> None:
            pass

        def case_started(self, case: str) -> None:
            pass

        def case_finished(self, case: str, verdict: str, duration_s: float | None,
                          message: str, expectation: str | None = None, *,
                          running_as: str | None = None) -> None:
            printed.append(f"{verdict} {case} {duration_s} {message}")

    monitor = session.RunMonitor(Recorder())
    nodeid = f"suites/{HEARS_NOTHING}"
    entry = {"id": HEARS_NOTHING, "verdict": "info", "expectation": None, "level": "MAY",
             "message": ""}
    phases: list[tuple[Literal["setup", "call", "teardown"], list[tuple[str, object]]]] = [
        ("setup", []), ("call", []), ("teardown", [("conformance", json.dumps(entry))]),
    ]
    for when, properties in phases:
        monitor.pytest_runtest_logreport(pytest.TestReport(
            nodeid, ("", None, ""), {}, "passed", None, when, user_properties=properties,
            duration=0.5,
        ))
    assert printed == [f"info {HEARS_NOTHING} 1.5 "]


def test_the_summary_counts_verdicts_and_lists_what_did_not_pass(tmp_path: Path) -> None:
    results = {
        "run": {"target": "linux", "interrupted": False, "verdicts": {"pass": 2, "fail": 1,
                                                                      "warn": 1}},
        "cases": [
            {"id": "a.py::test_pass", "verdict": "pass", "message": "", "expectation": None,
             "evidence": "a__test_pass.pcapng"},
            {"id": "a.py::test_fail[x]", "verdict": "fail", "expectation": "expected",
             "message": "AssertionError: got RST\nmore", "evidence": "a__test_fail-x.pcapng"},
            {"id": "a.py::test_warn", "verdict": "warn", "message": "slow", "expectation": None,
             "evidence": "a__test_warn.pcapng"},
        ],
    }
    output = io.StringIO()
    render_run_summary(Console(file=output, width=300), results, tmp_path / "linux")
    text = output.getvalue()
    assert re.search(r"FAIL\s+1", text) and re.search(r"WARN\s+1", text)
    assert re.search(r"PASS\s+2", text)
    fail_row = next(line for line in text.splitlines() if "test_fail[x]" in line)
    assert "FAIL (expected)" in fail_row
    assert str(tmp_path / "linux" / "a__test_fail-x.pcapng") in fail_row
    assert "AssertionError: got RST" in text and "more" not in text
    assert text.index("test_fail[x]") < text.index("test_warn")  # worst first
    assert "test_pass" not in text
    assert f"Evidence: {tmp_path / 'linux'}" in text


def write_case(directory: Path, document: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stem = document["evidence"].removesuffix(".pcapng")
    (directory / f"{stem}.json").write_text(json.dumps(document))


def hand_made_case(identifier: str, stem: str) -> dict[str, Any]:
    return {
        "id": identifier,
        "doc": "A connected UDP socket reports ICMP port unreachable as ECONNREFUSED.",
        "requirements": ["RFC1122-4.1.3.3a", "RFC1122-3.2.2.1"],
        "level": "MUST",
        "verdict": "fail",
        "message": "AssertionError: no error became pending\nassert [] == ['POLLERR']",
        "expectation": None,
        "observations": {"call.01.socket": "ok", "poll_after_icmp": []},
        "evidence": f"{stem}.pcapng",
        "duration_s": 1.25,
        "target": "linux",
        "calls": [
            {"sequence": 1, "call": "socket", "args": {"type": "udp"}, "outcome": "result",
             "value": 4, "started_s": 0.1, "finished_s": 0.1},
            {"sequence": 2, "call": "send", "args": {"sock": 4, "data": "<5 bytes>"},
             "outcome": "errno", "value": "ECONNREFUSED", "started_s": 0.3, "finished_s": 0.3},
        ],
        "frames": [
            {"number": 1, "sender": "dut", "time_s": 0.0,
             "summary": "Ether / IP / UDP 192.0.2.1:40000 > 192.0.2.2:discard / Raw",
             "comment": "dut: expected, expect #1 (the datagram)"},
            {"number": 2, "sender": "tester", "time_s": 0.0021,
             "summary": "Ether / IP / ICMP 192.0.2.2 > 192.0.2.1 dest-unreach port-unreachable",
             "comment": "tester: ICMP port unreachable quoting frame 1"},
        ],
        "environment": {},
    }


@pytest.fixture
def hand_made_run(tmp_path: Path) -> Path:
    """A run directory with one target and two cases, written as the plugin would."""
    target = tmp_path / "run" / "linux"
    write_case(target, hand_made_case("rfc768/test_fake.py::test_refused_send", "fake_send"))
    write_case(target, hand_made_case("rfc768/test_fake.py::test_refused_recv", "fake_recv"))
    return tmp_path / "run"


@pytest.mark.parametrize("where", ["run directory", "target directory"])
def test_show_prints_a_hand_made_case(hand_made_run: Path, where: str) -> None:
    directory = hand_made_run if where == "run directory" else hand_made_run / "linux"
    result = invoke("show", "refused_send", "--run", str(directory))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "rfc768/test_fake.py::test_refused_send" in text
    assert "FAIL" in text
    assert "MUST" in text
    assert "RFC1122-4.1.3.3a" in text
    assert "UDP passes every ICMP error" in text  # the catalogue's summary
    assert "assert [] == ['POLLERR']" in text  # the whole message, markup left alone
    assert "poll_after_icmp" in text
    assert "sock=4, data=<5 bytes>" in text and "ECONNREFUSED" in text
    assert "   2    0.002100  tester  Ether / IP / ICMP 192.0.2.2 > 192.0.2.1" in text
    assert "# tester: ICMP port unreachable quoting frame 1" in text
    assert str((hand_made_run / "linux" / "fake_send.pcapng").resolve()) in text


@pytest.mark.parametrize(("option", "text", "message"), [
    ("--expectations", "this is = not [toml\n", "not a valid expectations file: Expected '='"),
    ("--catalogue", "this is = not [toml\n", "cannot read the requirement catalogue"),
    ("--catalogue", "[[requirement]]\nid = 3\n", "level must be one of"),
])
def test_a_malformed_toml_file_is_a_usage_error_naming_it(
    tmp_path: Path, option: str, text: str, message: str
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(text)
    result = invoke("run", "--target", "ref", option, str(broken), "-k", "abort",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == EXIT_USAGE, result.output
    assert str(broken) in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_show_an_unknown_case_lists_the_cases(hand_made_run: Path) -> None:
    result = invoke("show", "no_such_case", "--run", str(hand_made_run))
    assert result.exit_code == EXIT_USAGE
    assert "no case matches 'no_such_case'" in result.stderr
    assert "rfc768/test_fake.py::test_refused_recv" in result.stderr
    assert "Traceback" not in result.output


def test_show_an_ambiguous_case_lists_the_candidates(hand_made_run: Path) -> None:
    result = invoke("show", "test_refused", "--run", str(hand_made_run))
    assert result.exit_code == EXIT_USAGE
    assert "matches 2 cases" in result.stderr
    assert "test_refused_send" in result.stderr and "test_refused_recv" in result.stderr


def test_show_asks_which_target_when_a_run_has_several(hand_made_run: Path) -> None:
    write_case(hand_made_run / "ref", hand_made_case("rfc768/test_fake.py::test_x", "x"))
    result = invoke("show", "refused_send", "--run", str(hand_made_run))
    assert result.exit_code == EXIT_USAGE
    assert "several targets (linux, ref)" in result.stderr
    result = invoke("show", "refused_send", "--run", str(hand_made_run), "--target", "linux")
    assert result.exit_code == 0, result.output


def test_show_defaults_to_the_latest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "pcaps" / "runs"
    write_case(runs / "20260101-000000" / "linux", hand_made_case("old::test_a", "a"))
    write_case(runs / "20260102-000000" / "linux", hand_made_case("new::test_a", "a"))
    monkeypatch.chdir(tmp_path)
    result = invoke("show", "test_a")
    assert result.exit_code == 0, result.output
    assert "new::test_a" in result.stdout


def test_show_a_directory_without_results(tmp_path: Path) -> None:
    result = invoke("show", "anything", "--run", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "holds no results" in result.stderr


# --- privileged: the real command ------------------------------------------------------


def conformance_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "conformance.cli", *args]


def run_conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(conformance_command(*args), cwd=cwd, capture_output=True,
                               text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed


def labs_of(pid: int) -> list[str]:
    """Lab namespaces owned by `pid`, as `ip netns list` shows them."""
    if not Path("/run/netns").exists():
        return []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=True).stdout
    return [line.split()[0] for line in listing.splitlines()
            if line.startswith(f"{LAB_PREFIX}{pid}-")]


def agents_of(pid: int) -> list[int]:
    """Agent processes serving a lab of `pid`: Linux agents by their --netns argument,
    external agents (lwIP's) by the TAP device named in their CF_TAP, and the fork server
    of any tester process of the run with every agent it forked, by their --tester (or,
    forked from the run's worker server, by their name, cfa<pid>)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        linux_agent = b"conformance.agent.linux" in argv and any(
            argument.startswith(f"{LAB_PREFIX}{pid}-".encode()) for argument in argv)
        external_agent = f"CF_TAP=cf{pid}t".encode() in b"\0".join(environment)
        forked = ((b"conformance.agent.forkserver" in argv and str(pid).encode() in argv)
                  or name == f"cfa{pid}"[:15])
        if linux_agent or external_agent or forked:
            found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it now (the run's pytest-xdist workers and
    what they started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The command may hold spaces and parentheses: the ppid follows the last ")".
                parents[int(entry.name)] = int((entry / "stat").read_text()
                                               .rpartition(")")[2].split()[1])
    tree = [pid]
    for member in tree:
        tree.extend(child for child, parent in parents.items() if parent == member)
    return tree


def leftovers_of(pids: list[int]) -> list[str | int]:
    """The labs and agent processes any of `pids` owned that still exist."""
    return [found for pid in pids for found in [*labs_of(pid), *agents_of(pid)]]


def first_case_done(out: Path) -> Callable[[], bool]:
    """Whether a case has its verdict (a set-up writes an unfinished document first)."""
    def done() -> bool:
        for path in out.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(path.read_text())
                if path.name != "results.json" and not document.get("unfinished"):
                    return True
        return False
    return done


def case_begun(directory: Path, case_name: str) -> Callable[[], bool]:
    """Whether the case's set-up has written its unfinished document."""
    def begun() -> bool:
        for path in directory.glob(f"*__{case_name}.json"):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()).get("unfinished"):
                    return True
        return False
    return begun


def dut_agents_of(pids: list[int]) -> list[int]:
    """The agents among `pids`: forked by a fork server, or started with a CF_TAP."""
    servers = {pid for pid in pids if b"conformance.agent.forkserver" in _cmdline(pid)}
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            state, parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[:2]
            environment = Path(f"/proc/{pid}/environ").read_bytes()
            # An agent that has exited but is not reaped yet (a zombie) is not running.
            if state != "Z" and (int(parent) in servers or b"CF_TAP=" in environment):
                found.append(pid)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def packets_in(lab: str) -> int:
    """The packets the lab's devices have sent and received (its /proc/net/dev)."""
    listing = subprocess.run(["ip", "netns", "exec", lab, "cat", "/proc/net/dev"],
                             capture_output=True, text=True, check=False).stdout
    total = 0
    for line in listing.splitlines()[2:]:
        device, _, counters = line.partition(":")
        if device.strip() != "lo":
            fields = counters.split()
            total += int(fields[1]) + int(fields[9])
    return total


def wait_until(condition: Callable[[], bool], *, within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling a directory: there is nothing to block on
    return True


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
class TestPrivileged:
    def test_a_failed_case_keeps_its_assertion_message(self, tmp_path: Path) -> None:
        """The verdict's message is the case's own (a known Linux deviation fails here)."""
        case_name = "test_unanswered_syn_is_retransmitted_with_backoff"
        run_conformance("run", "--target", "linux", "-k", case_name,
                        "--out", str(tmp_path / "run"), cwd=tmp_path)
        results = json.loads((tmp_path / "run" / "linux" / "results.json").read_text())
        [entry] = results["cases"]
        assert entry["verdict"] == "fail"
        assert entry["message"].startswith("AssertionError: no exponential backoff"), entry

    def test_run_writes_the_evidence_and_show_reads_it(self, tmp_path: Path) -> None:
        out = tmp_path / "run"
        child = subprocess.Popen(
            conformance_command("run", "--target", "linux", "-k", "unconnected",
                                "--out", str(out)),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stdout, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        assert child.returncode == EXIT_OK, stdout + stderr
        target = out / "linux"
        results = json.loads((target / "results.json").read_text())
        assert (target / "junit.xml").exists()
        identifiers = [case["id"] for case in results["cases"]]
        assert {HEARS_NOTHING, WITH_RECVERR} <= set(identifiers)
        assert all("unconnected" in identifier for identifier in identifiers)
        for case in results["cases"]:
            assert (target / case["evidence"]).stat().st_size > 0
            assert (target / case["evidence"]).suffix == ".pcapng"
        assert results["run"]["interrupted"] is False
        # One line per finished case, then the summary and where the evidence is.
        assert f"INFO   {HEARS_NOTHING}" in stdout
        assert f"PASS   {WITH_RECVERR}" in stdout
        assert "Evidence: " in stdout and "results.json, junit.xml" in stdout
        assert not labs_of(child.pid)

        result = invoke("show", "with_recverr", "--run", str(out))
        assert result.exit_code == 0, result.output
        assert WITH_RECVERR in result.stdout
        assert "PASS" in result.stdout
        assert "recvmsg" in result.stdout and "MSG_ERRQUEUE" in result.stdout
        assert "dest-unreach port-unreachable" in result.stdout
        assert "tester: ICMP port unreachable quoting frame" in result.stdout
        assert ".pcapng" in result.stdout

    def test_run_prints_results_json_on_request(self, tmp_path: Path) -> None:
        completed = run_conformance("run", "--target", "linux", "-k", "hears_nothing",
                                    "--out", str(tmp_path / "run"), "--json", cwd=tmp_path)
        assert completed.returncode == EXIT_OK, completed.stderr
        results = json.loads(completed.stdout)
        assert [case["id"] for case in results["cases"]] == [HEARS_NOTHING]
        assert results["run"]["verdicts"] == {"info": 1}

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (("--target", "linux", "--sysctl", "kernel.foo=1"), "want net.NAME=VALUE"),
            (("--target", "bsd"), "unknown target 'bsd' (known: external, "),
            (("--target", "linux", "-k", "nomatch"), "no case matches -k 'nomatch'"),
        ],
    )
    def test_usage_errors_exit_2(self, tmp_path: Path, args: tuple[str, ...], says: str) -> None:
        child = subprocess.Popen(
            conformance_command("run", *args, "--out", str(tmp_path / "run")),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        _, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        assert child.returncode == EXIT_USAGE, stderr
        assert says in stderr
        assert "Traceback" not in stderr
        assert not labs_of(child.pid)

    @pytest.mark.parametrize("target", ["linux", "lwip"])
    def test_an_interrupted_run_keeps_its_results_and_leaves_no_lab(
        self, tmp_path: Path, target: str
    ) -> None:
        out = tmp_path / "run"
        child = subprocess.Popen(
            conformance_command("run", "--target", target, "--out", str(out)),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A test runner started in the background may ignore SIGINT; its child
            # would inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert wait_until(first_case_done(out / target), within=60.0), \
                "no case finished within 60 s"
            owners = process_tree(child.pid)  # the run's workers own labs too
            assert len(owners) > 1, "the run has started no worker"
            child.send_signal(signal.SIGINT)
            stdout, stderr = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == session.EXIT_INTERRUPTED, stdout + stderr
        assert "Traceback" not in stderr
        results = json.loads((out / target / "results.json").read_text())
        assert results["run"]["interrupted"] is True
        assert results["cases"], "the finished cases are kept"
        assert "interrupted" in stderr
        assert not labs_of(child.pid)
        assert wait_until(lambda: not leftovers_of(owners), within=5.0), leftovers_of(owners)

    def test_a_killed_worker_leaves_no_lab_agent_or_fork_server(self, tmp_path: Path) -> None:
        """SIGKILL of one pytest-xdist worker mid-run: the run goes on and ends, and
        nothing the dead worker set up (labs, its fork server, forked agents) remains."""
        out = tmp_path / "run"
        child = subprocess.Popen(
            conformance_command("run", "--target", "ref", "--workers", "2", "-k", "tcp",
                                "--out", str(out)),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert wait_until(first_case_done(out / "ref"), within=60.0), \
                "no case finished within 60 s"
            owners = process_tree(child.pid)
            workers = [pid for pid in owners
                       if any(labs_of(pid)) or any(agents_of(pid))]
            assert workers, f"no worker holds a lab or an agent among {owners}"
            os.kill(workers[0], signal.SIGKILL)
            stdout, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert "Traceback" not in stderr
        assert wait_until(lambda: not leftovers_of(owners), within=5.0), leftovers_of(owners)
        # The case the worker was running is an error that says so (or, killed between
        # two cases, the one it had been handed never ran); none is missing.
        assert child.returncode == EXIT_FAIL, stdout + stderr
        results = json.loads((out / "ref" / "results.json").read_text())
        selected = json.loads(run_conformance("list", "-k", "tcp", "--json",
                                              cwd=tmp_path).stdout)
        assert len(results["cases"]) == len(selected)
        errors = [case for case in results["cases"] if case["verdict"] == "error"]
        assert errors, "no case of the killed worker is an error"
        assert all(re.search(r"worker gw\d running it died \(it was killed by SIGKILL\)|"
                             r"the case never ran: the run ended before a worker took it",
                             case["message"]) for case in errors), errors
        junit = (out / "ref" / "junit.xml").read_text()
        assert junit.count("<testcase ") == len(selected)
        assert junit.count("<error ") == len(errors)

    @pytest.mark.parametrize("target", ["ref", "linux", "lwip", "gvisor"])
    def test_an_agent_killed_mid_case_makes_the_case_an_error(
        self, tmp_path: Path, target: str
    ) -> None:
        """SIGKILL of the DUT's agent (the reference stack itself, the Linux agent, the
        lwIP and netstack processes) once the case's frames flow: that case is an error naming the
        signal, and the run goes on to the next case and exits 1."""
        long_case = "test_unanswered_syn_is_retransmitted_with_backoff"  # seconds of SYNs
        out = tmp_path / "run"
        child = subprocess.Popen(
            conformance_command("run", "--target", target, "--workers", "1", "-k",
                                f"{long_case} or test_abort_sends_rst", "--out", str(out)),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            # Serial: once the long case has begun (its set-up wrote its unfinished
            # document), the only agent left is its own.
            begun = case_begun(out / target, long_case)
            assert wait_until(lambda: begun() or child.poll() is not None, within=60.0), \
                "the long case never began"
            assert child.poll() is None, child.communicate()
            assert wait_until(lambda: len(dut_agents_of(process_tree(child.pid))) == 1,
                              within=30.0), "no agent started within 30 s"
            # The newest lab is the case's (the one before may still be being removed).
            lab = max(labs_of(child.pid), key=lambda name: int(name.rpartition("-")[2]))
            # The kernel's own frames (IPv6 solicitations) may come first: count from here.
            before = packets_in(lab)
            # The SYNs go out at 0, 1, 3 and 7 s (ref): one more frame is mid-case.
            assert wait_until(lambda: packets_in(lab) > before, within=30.0), \
                "the case's frames never flowed"
            # Asked again: an agent seen before may have been the last case's, exiting.
            [agent] = dut_agents_of(process_tree(child.pid))
            os.kill(agent, signal.SIGKILL)
            stdout, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == EXIT_FAIL, stdout + stderr
        assert "Traceback" not in stderr
        cases = {case["id"].partition("::")[2]: case for case in
                 json.loads((out / target / "results.json").read_text())["cases"]}
        assert set(cases) == {long_case, "test_abort_sends_rst"}
        killed = cases[long_case]
        assert killed["verdict"] == "error"
        assert killed["message"].startswith("the agent died during the case: "), killed
        assert "was killed by SIGKILL" in killed["message"].split("\n")[0], killed
        assert cases["test_abort_sends_rst"]["verdict"] == "pass"

    def test_doctor_finds_everything_required(self) -> None:
        result = invoke("doctor")
        assert result.exit_code == 0, result.output
        for facility in ("root / CAP_NET_ADMIN", "/dev/net/tun", "network namespaces",
                         "tshark", "kernel", "scapy", "pyroute2", "pytest"):
            assert facility in result.stdout
        assert "created and removed cf-" in result.stdout
        assert not labs_of(os.getpid())

    @pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
    def test_without_cap_net_admin(self, tmp_path: Path) -> None:
        """Root without CAP_NET_ADMIN: run and doctor exit 3; list works all the same."""
        drop = ["setpriv", "--bounding-set=-net_admin"]
        run = subprocess.run(
            [*drop, *conformance_command("run", "--target", "linux", "--out", str(tmp_path))],
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        )
        assert run.returncode == EXIT_ENVIRONMENT, run.stderr
        assert run.stderr.count("\n") == 1 and "CAP_NET_ADMIN" in run.stderr
        doctor = subprocess.run([*drop, *conformance_command("doctor")], capture_output=True,
                                text=True, timeout=RUN_TIMEOUT_S, check=False)
        assert doctor.returncode == EXIT_ENVIRONMENT, doctor.stderr
        assert "CAP_NET_ADMIN" in doctor.stderr
        listed = subprocess.run([*drop, *conformance_command("list", "--json")],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                check=False)
        assert listed.returncode == 0, listed.stderr
        assert CONNECTED_ON_SEND in [case["id"] for case in json.loads(listed.stdout)]

    def test_cleanup_removes_a_stale_lab(self) -> None:
        from pyroute2 import netns

        dead = subprocess.Popen(["true"])
        dead.wait()  # its pid now names no process
        name = f"{LAB_PREFIX}{dead.pid}-1"
        netns.create(name)
        try:
            result = invoke("cleanup")
            assert result.exit_code == 0, result.output
            assert f"removed {name}" in result.stdout
            assert name not in netns.listnetns()
        finally:
            if name in netns.listnetns():
                netns.remove(name)
