"""`conformance agent-check`: the project's agents pass it, and each way of breaking the
protocol fails exactly its check.

The misbehaving agents are real processes: tests/agents/misbehaving.py runs the reference
stack's agent as an external target's agent and breaks one rule between it and the
tester. Usage errors are checked offline (CliRunner); everything else runs real labs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_protocol.names import CALLS, SOCKET_OPTIONS
from conformance import cli
from conformance.agent_check import check_target, option_kinds
from conformance.lab.netns import NETNS_DIR, list_labs
from conformance.run.session import EXIT_INTERRUPTED
from conformance.targets import get_target
from conformance.targets.base import TargetOptions
from conformance.targets.external import LWIP_AGENT
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_OK, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent
MISBEHAVING = ROOT / "tests" / "agents" / "misbehaving.py"
# The reference stack as an external stack: the external target's lab is the ref target's.
REF_AGENT = (
    f"{sys.executable} -m stack.io --tap-fd {{CF_TAP_FD}} --mac {{CF_DUT_MAC}} "
    "--address {CF_DUT_ADDR}/{CF_PREFIX} --mtu {CF_MTU}"
)
CHECKS = ["hello", "unknown-call", "errno-names", "background-calls", "end-of-input", "stdout"]
# Each fault of misbehaving.py and the one check it must fail.
FAULTS = {
    "banner": "stdout",
    "unknown-error": "unknown-call",
    "errno-number": "errno-names",
    "ignore-eof": "end-of-input",
    "in-order": "background-calls",
    "twice": "stdout",
}
RUN_TIMEOUT_S = 120.0


def misbehaving(fault: str) -> str:
    return f"{sys.executable} {MISBEHAVING} --fault {fault} -- {REF_AGENT}"


def agent_check(*args: str) -> subprocess.CompletedProcess[str]:
    """`conformance agent-check ARGS` as a user runs it, from the repository."""
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "agent-check", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed


def labs_of(pid: int) -> list[str]:
    return [name for name in list_labs() if name.startswith(f"cf-{pid}-")]


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [check["name"] for check in report["checks"] if not check["passed"]]


# --- offline -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "no-such-target"], "unknown target 'no-such-target'"),
        (["--target", "external"], "needs --agent CMD"),
        (["--target", "ref", "--agent", "my-agent"], "--agent applies to the external target"),
        (["--agent", "'unbalanced"], "No closing quotation"),
    ],
)
def test_a_wrong_choice_of_agent_is_a_usage_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli.cli, ["agent-check", *args])
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.output


def test_a_missing_executable_is_an_environment_problem() -> None:
    result = CliRunner().invoke(cli.cli, ["agent-check", "--agent", "/nonexistent/agent -v"])
    assert result.exit_code == EXIT_ENVIRONMENT, result.output
    assert "/nonexistent/agent: no such executable" in result.output


def test_options_are_probed_on_the_sockets_they_apply_to() -> None:
    kinds = {name: option_kinds(option.level) for name, option in SOCKET_OPTIONS.items()}
    assert kinds["TCP_NODELAY"] == ("tcp",)
    assert kinds["UDP_CORK"] == ("udp",)
    assert kinds["SO_RCVBUF"] == kinds["IP_TTL"] == ("udp", "tcp")


# --- the project's agents pass -----------------------------------------------------------


@pytest.fixture(scope="module")
def lwip_agent() -> Path:
    if not LWIP_AGENT.exists():
        subprocess.run(
            ["make", "-C", str(ROOT / "agents" / "lwip")],
            check=True,
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
        )
    return LWIP_AGENT


@pytest.mark.parametrize("target", ["ref", "linux", "lwip"])
@pytest.mark.usefixtures("lwip_agent")
@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_the_projects_agents_pass(target: str) -> None:
    report = check_target(get_target(target), TargetOptions())
    assert [(check.name, check.passed) for check in report.checks] == [
        (name, True) for name in CHECKS
    ], report.checks
    assert report.agent == target
    assert report.calls == list(CALLS)
    # What each agent is documented to lack shows as unsupported, the rest as supported.
    assert report.options["TCP_NODELAY"]["tcp"].outcome == "supported"
    assert report.ioctls["FIONREAD"]["udp"].outcome == "supported"
    lacks_sndbuf = "unsupported" if target == "lwip" else "supported"
    assert report.options["SO_SNDBUF"]["tcp"].outcome == lacks_sndbuf
    lacks_ip_options = "supported" if target == "linux" else "unsupported"
    assert report.options["IP_OPTIONS"]["udp"].outcome == lacks_ip_options
    assert report.options["IP_MTU"]["udp"].outcome == (
        "unsupported" if target == "lwip" else "errno"
    )  # ENOTCONN: not connected


# --- the command line --------------------------------------------------------------------


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
class TestCommand:
    def test_a_good_agent_passes_and_its_supports_are_shown(self) -> None:
        completed = agent_check("--agent", REF_AGENT)
        assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
        lines = completed.stdout.splitlines()
        assert "all 6 checks passed" in lines[-1]
        rows = {line.split()[0]: line.split() for line in lines if line.strip()}
        assert rows["background-calls"][1] == "pass"
        assert rows["UDP_CORK"][1:3] == ["supported", "0"]
        assert rows["SIOCATMARK"][1] == "unsupported"  # the ref stack: TCP only
        assert rows["calls"][2:] == list(CALLS)

    def test_the_json_report(self) -> None:
        completed = agent_check("--target", "ref", "--json")
        assert completed.returncode == EXIT_OK, completed.stderr
        report = json.loads(completed.stdout)
        assert report["target"] == "ref" and report["passed"] is True
        assert report["missing_calls"] == []
        assert report["options"]["SO_TYPE"]["tcp"] == {"outcome": "supported", "detail": '"tcp"'}

    def test_an_agent_that_exits_at_once_did_not_start(self) -> None:
        completed = agent_check("--agent", "sh -c 'echo cannot open the TAP device >&2; exit 4'")
        assert completed.returncode == EXIT_FAIL, completed.stdout
        assert "did not start" in completed.stderr
        assert "cannot open the TAP device" in completed.stderr
        assert completed.stdout == ""

    def test_an_agent_greeting_on_stdout_did_not_start(self) -> None:
        completed = agent_check("--agent", misbehaving("greeting"))
        assert completed.returncode == EXIT_FAIL, completed.stdout
        assert "did not start" in completed.stderr
        assert "not JSON: b'agent ready\\n'" in completed.stderr

    def test_the_proxy_alone_breaks_nothing(self) -> None:
        completed = agent_check("--json", "--agent", misbehaving("none"))
        assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
        assert failed_checks(json.loads(completed.stdout)) == []

    @pytest.mark.parametrize(("fault", "check"), FAULTS.items())
    def test_each_fault_fails_exactly_its_check(self, fault: str, check: str) -> None:
        completed = agent_check("--json", "--agent", misbehaving(fault))
        assert completed.returncode == EXIT_FAIL, completed.stdout + completed.stderr
        report = json.loads(completed.stdout)
        assert failed_checks(report) == [check], report["checks"]
        [failed] = [entry for entry in report["checks"] if entry["name"] == check]
        assert "misbehaving: " in failed["stderr_tail"]  # what the agent said, as evidence

    def test_ctrl_c_removes_the_lab(self) -> None:
        """Interrupted while the background check waits (in-order: for 5 s)."""
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conformance.cli",
                "agent-check",
                "--agent",
                misbehaving("in-order"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A test runner started in the background may ignore SIGINT; its child
            # would inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 30
        while not (NETNS_DIR.exists() and labs_of(child.pid)):
            assert time.monotonic() < deadline and child.poll() is None, "no lab appeared"
            time.sleep(0.05)  # polling a directory: there is nothing to block on
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        assert child.returncode == EXIT_INTERRUPTED, stderr
        assert "interrupted; the lab is removed" in stderr
        assert labs_of(child.pid) == []
