"""External targets: any stack's agent as the DUT (docs/agent-protocol.md, "External
targets"), targets registered by other packages, and the lwip target.

Offline tests check the command line and the entry point group; privileged tests run
real cases against the real lwIP agent, as `--target external --agent CMD`, as a target
a package registers, and as `--target lwip`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conformance import cli
from conformance.errors import UsageError
from conformance.targets import get_target, registered_targets
from conformance.targets.base import StartedDut
from conformance.targets.external import LWIP_AGENT, ExternalTarget, parse_agent, substitute
from conformance.verdicts import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
CHECKSUM_CASE = "rfc768/test_udp.py::test_sent_datagrams_carry_a_correct_checksum"
PORTS_CASE = ("rfc768/test_udp.py::"
              "test_datagrams_go_to_the_destination_port_and_replies_to_the_source_port")
CASES = "test_sent_datagrams_carry_a_correct_checksum or test_datagrams_go_to_the_destination"
RUN_TIMEOUT_S = 300.0


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args), env={"COLUMNS": "400"},
                              catch_exceptions=False)


# --- offline ---------------------------------------------------------------------------


def test_the_agent_command_is_split_as_a_shell_splits_it() -> None:
    assert parse_agent("/opt/agent --name 'my stack' -v") == (
        "/opt/agent", "--name", "my stack", "-v")
    assert parse_agent(None) == ()
    with pytest.raises(UsageError, match="empty"):
        parse_agent("  ")
    with pytest.raises(UsageError, match="quotation"):
        parse_agent("agent 'unbalanced")


def test_placeholders_take_the_values_of_the_lab_variables() -> None:
    environment = {"CF_TAP_FD": "5", "CF_DUT_ADDR": "192.0.2.1", "CF_PREFIX": "24"}
    assert substitute(["agent", "--fd={CF_TAP_FD}", "{CF_DUT_ADDR}/{CF_PREFIX}", "{CF_NONE}",
                       '{"json": 1}'], environment) == [
        "agent", "--fd=5", "192.0.2.1/24", "{CF_NONE}", '{"json": 1}']


@pytest.mark.parametrize(("hello", "grace_s"), [
    ({}, 0.0), ({"barrier_grace_ms": 100}, 0.1), ({"barrier_grace_ms": 2.5}, 0.0025),
    ({"barrier_grace_ms": 5000}, 1.0), ({"barrier_grace_ms": -3}, 0.0),
    ({"barrier_grace_ms": "100"}, 0.0), ({"barrier_grace_ms": True}, 0.0),
])
def test_an_agent_declares_its_barrier_grace_in_hello(hello: dict[str, Any],
                                                      grace_s: float) -> None:
    started = StartedDut(host=None, wire=None, agent=None, lab=None,  # type: ignore[arg-type]
                         hello=hello)
    assert started.barrier_grace_s == grace_s


def test_external_without_an_agent_is_a_usage_error() -> None:
    result = invoke("run", "--target", "external")
    assert result.exit_code == EXIT_USAGE
    assert "--target external needs --agent CMD" in result.output


@pytest.mark.parametrize("target", ["ref", "linux", "lwip"])
def test_agent_applies_to_the_external_target_only(target: str) -> None:
    result = invoke("run", "--target", target, "--agent", "/bin/true")
    assert result.exit_code == EXIT_USAGE
    assert "--agent applies to the external target only" in result.output


def test_a_missing_agent_is_an_environment_problem() -> None:
    result = invoke("run", "--target", "external", "--agent", "/no/such/agent --flag")
    assert result.exit_code == EXIT_ENVIRONMENT
    assert "/no/such/agent: no such executable" in result.output


def test_compare_of_two_runs_takes_no_agent(tmp_path: Path) -> None:
    result = invoke("compare", str(tmp_path), str(tmp_path), "--agent", "/bin/true")
    assert result.exit_code == EXIT_USAGE
    assert "--agent: only with --targets" in result.output


def write_distribution(root: Path, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it on sys.path."""
    info = root / "mystack_conformance-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mystack-conformance\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[conformance.targets]\n{entry_points}")
    for name, text in modules.items():
        (root / f"{name}.py").write_text(text)


MYSTACK_MODULE = f"""
from conformance.targets.external import ExternalTarget


def target():
    return ExternalTarget("mystack", [{str(LWIP_AGENT)!r}], facts={{"version": "1.4"}})
"""


def test_a_package_registers_a_target_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(tmp_path, "mystack = mystack_target:target\n"
                       "ref = mystack_target:target\nbroken = no_such_module:target\n",
                       {"mystack_target": MYSTACK_MODULE})
    monkeypatch.syspath_prepend(str(tmp_path))
    targets = registered_targets()
    assert {"ref", "linux", "lwip", "external", "mystack", "broken"} <= set(targets)
    mystack = get_target("mystack")
    assert isinstance(mystack, ExternalTarget)
    assert mystack.name == "mystack"
    assert mystack.describe()["version"] == "1.4"
    assert type(get_target("ref")).__name__ == "RefTarget"  # a built-in name stays built-in
    with pytest.raises(UsageError, match=r"'broken' .*no_such_module.* cannot be loaded"):
        get_target("broken")
    with pytest.raises(UsageError, match=r"known: .*mystack"):
        get_target("nosuch")


# --- privileged: real cases on the real lwIP agent -------------------------------------


def run_conformance(*args: str, cwd: Path,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run([sys.executable, "-m", "conformance.cli", *args], cwd=cwd,
                               capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                               check=False, env=env)
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed


def verdicts(directory: Path) -> tuple[dict[str, str], dict[str, Any]]:
    results = json.loads((directory / "results.json").read_text())
    return {case["id"]: case["verdict"] for case in results["cases"]}, results["run"]


@pytest.fixture(scope="module")
def lwip_agent() -> Path:
    """The lwIP agent, built as scripts/setup.sh builds it."""
    subprocess.run(["make", "-s", "-C", str(REPO / "agents" / "lwip")], check=True)
    return LWIP_AGENT


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
class TestPrivileged:
    def test_an_external_agent_learns_its_lab_from_variables_and_placeholders(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # The lwIP agent reads CF_DUT_ADDR; `env` sets it from a placeholder, so the
        # case passes only if the placeholder was replaced by the lab's address.
        command = f"env CF_DUT_ADDR={{CF_DUT_ADDR}} {lwip_agent}"
        completed = run_conformance("run", "--target", "external", "--agent", command,
                                    "-k", CASES, "--out", str(tmp_path / "run"), cwd=tmp_path)
        assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
        found, run = verdicts(tmp_path / "run" / "external")
        assert found == {CHECKSUM_CASE: "pass", PORTS_CASE: "pass"}
        facts = run["target_facts"]
        assert facts["agent_command"] == ["env", "CF_DUT_ADDR={CF_DUT_ADDR}", str(lwip_agent)]
        assert facts["agent_hello"]["agent"] == "lwip"
        assert facts["agent_hello"]["facts"]["TCP_MSS"] == 1460

    def test_a_registered_target_runs_by_its_name(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        write_distribution(tmp_path / "site", "mystack = mystack_target:target\n",
                           {"mystack_target": MYSTACK_MODULE})
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(tmp_path / "site"), str(REPO), os.environ.get("PYTHONPATH", "")])}
        completed = run_conformance("run", "--target", "mystack", "-k", CASES, "--out",
                                    str(tmp_path / "run"), cwd=tmp_path, env=environment)
        assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
        found, run = verdicts(tmp_path / "run" / "mystack")
        assert found == {CHECKSUM_CASE: "pass", PORTS_CASE: "pass"}
        assert run["target_facts"]["version"] == "1.4"

    def test_the_lwip_target_records_lwips_build_options(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        completed = run_conformance("run", "--target", "lwip", "-k", CASES, "--out",
                                    str(tmp_path / "run"), cwd=tmp_path)
        assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
        found, run = verdicts(tmp_path / "run" / "lwip")
        assert found == {CHECKSUM_CASE: "pass", PORTS_CASE: "pass"}
        facts = run["target_facts"]
        assert facts["stack"] == "lwip"
        assert facts["agent_hello"]["facts"]["lwip_version"] == "2.1.3"
        assert facts["agent_hello"]["facts"]["TCP_WND"] == 65535


def run_case_with_agent(tmp_path: Path, command: str) -> dict[str, Any]:
    """CHECKSUM_CASE on `--target external --agent command`: its case document."""
    completed = run_conformance("run", "--target", "external", "--agent", command, "-k",
                                "test_sent_datagrams_carry_a_correct_checksum", "--out",
                                str(tmp_path / "run"), cwd=tmp_path)
    target = tmp_path / "run" / "external"
    assert (target / "results.json").exists(), completed.stdout + completed.stderr
    [document] = [json.loads(path.read_text()) for path in target.glob("rfc768__*.json")]
    return document


def after_hello(agent: Path, then: str) -> str:
    """An agent command: `agent`'s answer to hello passed on, then the shell's `then`
    writing the rest of its stdout."""
    return f"sh -c '{agent} | {{ read -r line; echo \"$line\"; {then}; }}'"


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
class TestAgentHygiene:
    """An agent that fails makes the case `error`, never a verdict on the DUT, and its
    stderr is kept; nothing it started outlives the case."""

    def test_an_agent_that_exits_at_once_is_an_error_with_its_stderr(
        self, tmp_path: Path
    ) -> None:
        document = run_case_with_agent(
            tmp_path, "sh -c 'echo mystack: no such interface >&2; exit 3'")
        assert document["verdict"] == "error"
        assert "did not start" in document["message"]
        assert "mystack: no such interface" in document["message"]

    def test_garbage_on_stdout_is_an_error_and_the_stderr_is_kept(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # The real agent, with a line that is not JSON after its answer to hello.
        command = (f"sh -c 'echo agent-log-marker >&2; {lwip_agent} | "
                   "{ read -r line; echo \"$line\"; echo garbage; exec cat; }'")
        document = run_case_with_agent(tmp_path, command)
        assert document["verdict"] == "error"
        assert "not JSON" in document["message"] and "garbage" in document["message"]
        assert "agent-log-marker" in document["agent_log"]

    def test_an_agent_that_dies_during_the_case_is_an_error(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # Its output ends after two responses (hello and the case's first call).
        command = (f"sh -c '{lwip_agent} | {{ read -r line; echo \"$line\"; "
                   "read -r line; echo \"$line\"; }'")
        document = run_case_with_agent(tmp_path, command)
        assert document["verdict"] == "error"
        assert "agent" in document["message"]
        assert [call["outcome"] for call in document["calls"]][:1] == ["result"]

    def test_an_over_long_line_is_an_error_not_a_growing_buffer(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # After its answer to hello, a line of 17 MiB (over the 16 MiB limit) with no end.
        document = run_case_with_agent(tmp_path, after_hello(
            lwip_agent, "head -c 17825792 /dev/zero | tr \"\\\\0\" x; exec cat"))
        assert document["verdict"] == "error"
        assert "a line longer than 16777216 bytes" in document["message"], document["message"]

    def test_an_agent_that_never_answers_is_an_error(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # It answers hello, then nothing more: the case's first call waits in vain.
        document = run_case_with_agent(tmp_path, after_hello(lwip_agent, "exec sleep 3018.25"))
        assert document["verdict"] == "error"
        assert "got no response within" in document["message"], document["message"]
        assert "the agent hung" in document["message"]
        assert processes_with("sleep\0" + "3018.25") == []

    def test_a_dut_that_floods_the_wire_is_an_error_and_the_capture_stays_bounded(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        # Beside lwIP, on its TAP descriptor, frames without end (dd writes each block of
        # 60 octets as one frame); the case lasts seconds (SYNs at 0, 1, 3 s...).
        frames = tmp_path / "frames.bin"
        frames.write_bytes((bytes.fromhex("ffffffffffff02000000000188b5") + bytes(46)) * 1000)
        flood = (f"while :; do dd if={frames} bs=60 status=none; done "
                 ">&$CF_TAP_FD")
        completed = run_conformance(
            "run", "--target", "external", "--agent",
            f"bash -c '{flood} & exec {lwip_agent}'",
            "-k", "test_unanswered_syn_is_retransmitted_with_backoff",
            "--out", str(tmp_path / "run"), cwd=tmp_path)
        assert completed.returncode == 1, completed.stdout + completed.stderr
        [path] = (tmp_path / "run" / "external").glob("rfc9293__*.json")
        document = json.loads(path.read_text())
        assert document["verdict"] == "error"
        assert "the DUT flooded the wire: more than 5000 frames" in document["message"], (
            document["message"])
        assert len([frame for frame in document["frames"] if frame["sender"] == "dut"]) == 5000
        assert processes_with(f"if={frames}") == []

    def test_what_an_agent_starts_ends_with_the_case(
        self, tmp_path: Path, lwip_agent: Path
    ) -> None:
        marker = "3017.25"  # a sleep no other process runs
        document = run_case_with_agent(tmp_path, f"sh -c 'sleep {marker} & exec {lwip_agent}'")
        assert document["verdict"] == "pass", document["message"]
        assert processes_with(f"sleep\0{marker}") == []
