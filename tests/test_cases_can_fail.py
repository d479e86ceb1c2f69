"""Every case must be able to fail: Linux DUTs made to misbehave through sysctls set
inside the DUT namespace, and the cases that check the broken behaviour changing their
verdict or observation. The same cases pass on a default kernel (test_linux_suites.py)."""

from pathlib import Path

import pytest

from tests.suite_runner import case, privileged, run_suites

pytestmark = privileged


def test_no_pmtu_discovery_clears_df(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "carry_df", "--sysctl", "net.ipv4.ip_no_pmtu_disc=1")
    entry = case(results, "test_datagrams_carry_df")
    assert entry["observations"]["df"] is False
    assert "without DF" in entry["message"]


def test_a_path_mtu_floor_above_the_next_hop_mtu_fails_the_pmtu_cases(tmp_path: Path) -> None:
    # The kernel then refuses to go below 1400: it no longer follows the Next-Hop MTU.
    results = run_suites(tmp_path, "-k", "lowers_the_path_mtu or smaller_segments or "
                         "does_not_raise", "--sysctl", "net.ipv4.route.min_pmtu=1400")
    for name in ("test_datagram_too_big_lowers_the_path_mtu",
                 "test_tcp_sends_smaller_segments_after_datagram_too_big",
                 "test_larger_next_hop_mtu_does_not_raise_the_estimate"):
        assert case(results, name)["verdict"] == "fail", name
    assert results["exit_status"] == 1


def test_a_two_second_reassembly_timeout_fails_the_timeout_case(tmp_path: Path) -> None:
    # RFC 1122 3.3.2: the case accepts 15 s to 130 s; fragments 2 s apart would be lost.
    results = run_suites(tmp_path, "--slow", "-k", "reassembly_timeout_sends_time_exceeded",
                         "--sysctl", "net.ipv4.ipfrag_time=2")
    entry = case(results, "test_reassembly_timeout_sends_time_exceeded")
    assert entry["verdict"] == "fail"
    assert "sooner than 15 s" in entry["message"]


def test_too_few_synack_retries_fail_the_backoff_case(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "unanswered_synack",
                         "--sysctl", "net.ipv4.tcp_synack_retries=1")
    entry = case(results, "test_unanswered_synack_is_retransmitted_with_backoff")
    assert entry["verdict"] == "fail"
    assert "SYN-ACK retransmission 2" in entry["message"]


def test_abort_on_overflow_changes_the_overflow_policy(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "overflowing_accept_queue",
                         "--sysctl", "net.ipv4.tcp_abort_on_overflow=1")
    entry = case(results, "test_overflowing_accept_queue_hands_over_every_acknowledged_connection")
    assert "reset" in entry["observations"]["outcomes"].values()
    assert "dropped" not in entry["observations"]["outcomes"].values()
    assert entry["verdict"] == "pass"  # resetting is allowed; what was acknowledged arrived


def test_rfc1337_makes_time_wait_ignore_rst(tmp_path: Path) -> None:
    default = run_suites(tmp_path / "default", "-k", "rst_in_time_wait")
    assert case(default, "test_rst_in_time_wait")["observations"]["rst_in_time_wait"] == "closed"
    hardened = run_suites(tmp_path / "rfc1337", "-k", "rst_in_time_wait",
                          "--sysctl", "net.ipv4.tcp_rfc1337=1")
    assert case(hardened, "test_rst_in_time_wait")["observations"]["rst_in_time_wait"] == "ignored"


@pytest.mark.parametrize("name", ["net.ipv4.tcp_rfc1337", "net.ipv4.ip_no_pmtu_disc"])
def test_sysctls_never_reach_the_host(tmp_path: Path, name: str) -> None:
    path = Path("/proc/sys") / name.replace(".", "/")
    before = path.read_text()
    flipped = "1" if before.strip() == "0" else "0"
    results = run_suites(tmp_path, "-k", "carry_df", "--sysctl", f"{name}={flipped}")
    assert results["run"]["sysctls_applied"] == {name: flipped}
    assert path.read_text() == before


def test_ignoring_echo_requests_fails_the_echo_case(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "echo_reply_returns_the_data",
                         "--sysctl", "net.ipv4.icmp_echo_ignore_all=1")
    entry = case(results, "test_echo_reply_returns_the_data_unchanged")
    assert entry["verdict"] == "fail"
    assert "echo reply" in entry["message"]


def test_no_icmp_rate_limit_changes_the_burst_observation(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "burst_of_errors", "--sysctl", "net.ipv4.icmp_ratelimit=0")
    entry = case(results, "test_burst_of_errors_is_rate_limited")
    assert entry["observations"]["port_unreachables_for_20_datagrams"] == 20


def test_strict_reverse_path_filter_mends_the_directed_broadcast_deviation(tmp_path: Path) -> None:
    # Listed in suites/expectations/linux.toml as a failure: passing is reported as unexpected.
    results = run_suites(tmp_path, "-k", "invalid_source_address and directed",
                         "--sysctl", "net.ipv4.conf.all.rp_filter=1")
    entry = case(results, "test_invalid_source_address_is_silently_discarded[directed-broadcast]")
    assert (entry["verdict"], entry["expectation"]) == ("pass", "unexpected")
    assert results["exit_status"] == 1
