"""The TCP data-transfer, timing and window cases can fail: Linux DUTs made to misbehave
through sysctls in the DUT namespace change their verdicts (RFC 9293 3.8, 3.8.4)."""

from pathlib import Path

from tests.suite_runner import case, privileged, run_suites

pytestmark = privileged


def test_no_ecn_fails_the_ecn_case(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "ecn_setup", "--sysctl", "net.ipv4.tcp_ecn=0")
    entry = case(results, "test_ecn_setup_syn_is_answered_with_ece")
    assert entry["verdict"] == "warn"
    assert entry["observations"]["synack_flags"] == "SA"


def test_short_keepalive_default_fails_the_two_hour_case(tmp_path: Path) -> None:
    results = run_suites(tmp_path, "-k", "keepalive_idle_time",
                         "--sysctl", "net.ipv4.tcp_keepalive_time=60")
    entry = case(results, "test_keepalive_idle_time_defaults_to_at_least_two_hours")
    assert entry["verdict"] == "fail"
    assert entry["observations"]["tcp_keepidle_s"] == 60


def test_high_reordering_threshold_fails_fast_retransmit(tmp_path: Path) -> None:
    # Ten duplicate ACKs are then needed; the third brings nothing until the RTO.
    results = run_suites(tmp_path, "-k", "third_duplicate_ack",
                         "--sysctl", "net.ipv4.tcp_reordering=10")
    entry = case(results, "test_third_duplicate_ack_triggers_fast_retransmit")
    assert entry["verdict"] == "warn"
    assert entry["observations"]["fast_retransmit_delay_s"] > 0.1


def test_syn_backoff_case_follows_linear_timeouts(tmp_path: Path) -> None:
    # Linux's default linear SYN timeouts fail the case (a known deviation); without
    # them the intervals double and it passes.
    linear = run_suites(tmp_path / "linear", "-k", "unanswered_syn_is")
    assert case(linear, "test_unanswered_syn_is_retransmitted_with_backoff")["verdict"] == "fail"
    doubling = run_suites(tmp_path / "doubling", "-k", "unanswered_syn_is",
                          "--sysctl", "net.ipv4.tcp_syn_linear_timeouts=0")
    assert case(doubling, "test_unanswered_syn_is_retransmitted_with_backoff")["verdict"] == "pass"
