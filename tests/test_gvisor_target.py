"""The gvisor target: agents/gvisor builds from Debian's packaged gVisor sources, real UDP
and TCP handshake cases pass on it, and its hello facts reach the run's target_facts."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import UsageError
from conformance.targets import get_target
from conformance.targets.base import TargetOptions
from conformance.targets.gvisor import GVISOR_AGENT, GvisorTarget
from conformance.verdicts import EXIT_OK

REPO = Path(__file__).resolve().parents[1]
UDP_CASES = {
    "rfc768/test_udp.py::test_sent_datagrams_carry_a_correct_checksum": "pass",
    "rfc768/test_udp.py::test_datagrams_go_to_the_destination_port_and_replies_to_the_source_port":
        "pass",
}
TCP_CASES = {
    "rfc9293/test_handshake.py::test_passive_open": "pass",
    "rfc9293/test_handshake.py::test_active_open": "pass",
    "rfc9293/test_handshake.py::test_active_open_syn_carries_mss": "pass",
}
SELECTION = ("test_sent_datagrams_carry_a_correct_checksum or "
             "test_datagrams_go_to_the_destination or "
             "test_passive_open or test_active_open")
RUN_TIMEOUT_S = 300.0


def test_the_gvisor_target_is_registered_with_its_agent() -> None:
    target = get_target("gvisor")
    assert isinstance(target, GvisorTarget)
    assert target.describe()["agent_command"] == [str(GVISOR_AGENT)]


def test_the_gvisor_target_takes_no_agent() -> None:
    with pytest.raises(UsageError, match="--agent applies to the external target only"):
        GvisorTarget().check_options(TargetOptions(agent=("/bin/true",)))


@pytest.fixture(scope="module")
def gvisor_agent() -> Path:
    """The agent, built as scripts/setup.sh builds it (offline, GOPATH mode)."""
    subprocess.run(["make", "-s", "-C", str(REPO / "agents" / "gvisor")], check=True,
                   timeout=RUN_TIMEOUT_S)
    return GVISOR_AGENT


def run_gvisor(tmp_path: Path, selection: str = SELECTION
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verdict and expectation of each case the run judged, and the run's record."""
    completed = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--target", "gvisor", "-k", selection,
         "--workers", "2", "--out", str(tmp_path / "run")],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == EXIT_OK, completed.stdout + completed.stderr
    results = json.loads((tmp_path / "run" / "gvisor" / "results.json").read_text())
    return ({case["id"]: (case["verdict"], case["expectation"]) for case in results["cases"]},
            results["run"])


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_udp_and_tcp_handshake_cases_pass_and_facts_are_recorded(
    tmp_path: Path, gvisor_agent: Path
) -> None:
    assert gvisor_agent.exists()
    found, run = run_gvisor(tmp_path)
    assert found == {case: (verdict, None) for case, verdict in {**UDP_CASES,
                                                                  **TCP_CASES}.items()}
    facts = run["target_facts"]
    assert facts["stack"] == "gvisor"
    hello = facts["agent_hello"]
    assert hello["agent"] == "gvisor"
    assert hello["protocol"] == 1
    assert len(hello["calls"]) == 21
    assert hello["facts"]["tcp_sack"] is True
    assert hello["facts"]["ip_default_ttl"] == 64
    assert "listen(n)" in hello["facts"]["listen_backlog"]
    assert hello["barrier_grace_ms"] == 100


# One deviation of each kind netstack has, as suites/expectations/gvisor.toml explains it.
DEVIATIONS = {
    "rfc768/test_udp.py::test_octets_beyond_the_udp_length_are_not_delivered": "fail",
    "rfc9293/test_segment_arrival.py::test_ack_of_unsent_data_is_dropped": "fail",
    "rfc9293/test_delayed_ack_nagle.py::test_small_segments_share_a_delayed_ack": "warn",
}


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_known_deviations_are_judged_as_the_expectations_say(
    tmp_path: Path, gvisor_agent: Path
) -> None:
    selection = " or ".join(case.split("::")[1] for case in DEVIATIONS)
    found, _ = run_gvisor(tmp_path, selection)
    assert found == {case: (verdict, "expected") for case, verdict in DEVIATIONS.items()}
