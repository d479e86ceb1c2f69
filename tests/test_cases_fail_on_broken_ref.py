"""Every UDP, ICMP and PMTU case fails against a reference stack broken in the behaviour
it checks (tests/broken_ref.py), and passes against the stack as it is
(tests/test_ref_suites.py). For MAY cases, which never fail, the observation changes."""

from pathlib import Path

import pytest

from tests.suite_runner import REPOSITORY, case, privileged, run_suites

pytestmark = privileged

PATCHES = REPOSITORY / "tests" / "broken_ref.py"

# case -> the patch that breaks what it checks
MUST_CASES = {
    "test_connected_socket_reports_port_unreachable_on_send": "send_ignores_pending_error",
    "test_connected_socket_reports_port_unreachable_on_recv": "recv_ignores_pending_error",
    "test_blocked_recv_is_woken_by_port_unreachable": "recv_ignores_pending_error",
    "test_unconnected_socket_with_recverr_queues_the_error": "no_error_queue",
    "test_datagram_too_big_lowers_the_path_mtu": "ignore_datagram_too_big",
    "test_error_queue_reports_emsgsize_with_the_mtu": "error_queue_without_mtu",
    "test_oversize_send_fails_and_fitting_datagrams_go_out": "sends_ignore_the_path_mtu",
    "test_path_mtu_never_goes_below_68": "pmtu_follows_every_message",
    "test_larger_next_hop_mtu_does_not_raise_the_estimate": "pmtu_follows_every_message",
    "test_next_hop_mtu_above_the_link_mtu_is_ignored": "pmtu_follows_every_message",
    "test_pmtu_discovery_modes_after_a_lowered_path_mtu": "sends_ignore_the_path_mtu",
}

# MAY case -> (patch, observation key, value on the broken stack)
MAY_CASES = {
    "test_datagrams_carry_df": ("never_set_df", "df", False),
    "test_unconnected_socket_hears_nothing_without_recverr": (
        "unconnected_sockets_hear_hard_errors", "poll_after_icmp", ["POLLERR"]),
}


def run_broken(out: Path, name: str, patch: str) -> dict[str, object]:
    results = run_suites(out, "-k", name, "--ref-patch", f"{PATCHES}:{patch}", target="ref")
    return case(results, name)


@pytest.mark.parametrize("name", sorted(MUST_CASES))
def test_case_fails_on_a_stack_broken_in_what_it_checks(tmp_path: Path, name: str) -> None:
    entry = run_broken(tmp_path, name, MUST_CASES[name])
    assert entry["verdict"] == "fail", entry["message"]


@pytest.mark.parametrize("name", sorted(MAY_CASES))
def test_may_case_observes_the_broken_behaviour(tmp_path: Path, name: str) -> None:
    patch, key, broken_value = MAY_CASES[name]
    entry = run_broken(tmp_path, name, patch)
    assert entry["verdict"] == "info"
    assert entry["observations"][key] == broken_value
