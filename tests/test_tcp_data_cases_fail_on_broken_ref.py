"""Every case of the TCP data, window, timing and error modules (suites/rfc9293/
test_data_transfer.py, test_window.py, test_retransmission.py, test_delayed_ack_nagle.py,
test_keepalive.py, test_tcp_icmp_pmtu.py) fails against a reference stack broken in the
behaviour it checks (tests/broken_ref_tcp_data.py, tests/broken_ref_tcp_icmp.py), and
passes against the stack as it is (tests/test_ref_suites.py). SHOULD cases warn instead;
cases that only observe (MAY, or a choice the RFCs leave open) record a different
observation.

Cases broken by the same patch run together, in one run of the suites per patch. A
parametrized case is named with its id in brackets: every parametrization is listed."""

from pathlib import Path

import pytest

from tests.breakage import Breakages, Observed, listed_cases
from tests.suite_runner import REPOSITORY, privileged

pytestmark = privileged

MODULES = tuple(f"rfc9293/{name}.py::" for name in (
    "test_data_transfer", "test_window", "test_retransmission", "test_delayed_ack_nagle",
    "test_keepalive", "test_tcp_icmp_pmtu"))

SOFT_ERRORS = ("net-unreachable", "host-unreachable", "source-route-failed", "time-exceeded",
               "parameter-problem")
DESTINATIONS = ("directed-broadcast", "limited-broadcast", "multicast")
INVALID_SOURCES = ("multicast", "limited-broadcast", "loopback", "this-host")

# case -> the patch (or "NAME=VALUE", a --ref-setting) that breaks what it checks
MUST_CASES = {
    # test_data_transfer.py
    "test_data_flows_both_ways": "no_psh_on_data",
    "test_queued_segments_are_processed_before_the_ack":
        "gap_filler_acknowledged_before_the_queue",
    "test_segments_never_exceed_the_announced_mss": "peer_mss_ignored",
    "test_send_mss_defaults_to_536_without_an_option": "tcp_default_mss=1460",
    "test_syn_carries_an_mss_option": "syn_without_mss_option",
    "test_segment_with_an_unknown_ip_option_is_processed": "unknown_ip_option_drops_the_segment",
    "test_ttl_of_segments_is_configurable": "ip_ttl_ignored_by_tcp",
    "test_differentiated_services_field_is_set_by_the_application": "ip_tos_ignored_by_tcp",
    "test_urgent_data_is_signalled_to_the_application": "urgent_pointer_ignored",
    "test_urgent_pointer_points_after_the_urgent_data": "urgent_data_sent_as_normal_data",
    # test_window.py
    "test_zero_window_is_probed_until_it_opens": "zero_window_never_probed",
    "test_sender_does_not_fill_a_small_window_opening_at_once": "sender_fills_small_windows",
    "test_receiver_does_not_open_a_silly_window": "receiver_opens_silly_windows",
    "test_sender_survives_a_shrunk_window": "resets_on_a_shrunk_window",
    # test_retransmission.py
    "test_unanswered_syn_is_retransmitted_with_backoff": "syn_retransmitted_at_a_fixed_interval",
    "test_unacknowledged_data_is_retransmitted_with_backoff":
        "data_retransmitted_at_a_fixed_interval",
    "test_first_flight_is_within_the_initial_window": "tcp_initial_window_segments=40",
    "test_user_timeout_aborts_a_connection_with_etimedout": "user_timeout_ignored",
    "test_syn_retransmissions_last_at_least_3_minutes": "tcp_syn_retries=2",
    # test_delayed_ack_nagle.py
    "test_ack_is_delayed_by_less_than_half_a_second": "tcp_delayed_ack_min=600000000",
    "test_nodelay_sends_a_small_write_at_once": "tcp_nodelay_ignored",
    # test_keepalive.py
    "test_keepalive_is_off_by_default": "keepalive_on_by_default",
    "test_keepalive_idle_time_defaults_to_at_least_two_hours":
        "tcp_keepalive_time=60000000000",
    "test_keepalive_probes_an_idle_connection": "keepalive_idle_time_not_configurable",
    "test_unanswered_keepalive_is_not_a_dead_connection":
        "keepalive_gives_up_after_one_unanswered_probe",
    # test_tcp_icmp_pmtu.py
    "test_hard_error_aborts_a_connection_attempt[protocol-unreachable]":
        "hard_errors_ignored_while_connecting",
    "test_hard_error_aborts_a_connection_attempt[port-unreachable]":
        "hard_errors_ignored_while_connecting",
    "test_icmp_error_reaches_only_the_connection_it_quotes": "icmp_error_matched_without_ports",
    "test_soft_error_does_not_end_a_connection_attempt": "tcp_soft_error_ends_connect=1",
    **{f"test_soft_error_does_not_abort_an_established_connection[{error}]":
       "soft_errors_abort_connections" for error in SOFT_ERRORS},
    "test_soft_error_is_made_available_to_the_application": "soft_errors_not_reported",
    "test_source_quench_is_silently_discarded": "source_quench_reported",
    "test_datagram_too_big_lowers_the_segment_size": "tcp_ignores_datagram_too_big",
    **{f"test_connect_to_broadcast_or_multicast_is_refused[{address}]":
       "connect_to_broadcast_or_multicast_allowed" for address in DESTINATIONS},
    **{f"test_syn_to_broadcast_or_multicast_is_discarded[{address}]":
       "syn_to_broadcast_or_multicast_accepted" for address in DESTINATIONS},
    **{f"test_syn_from_an_invalid_source_is_ignored[{source}]":
       "syn_from_invalid_source_accepted" for source in INVALID_SOURCES},
}

# SHOULD and SHOULD NOT cases: they warn
SHOULD_CASES = {
    "test_out_of_order_data_is_queued_and_acknowledged_cumulatively":
        "out_of_order_segments_dropped",
    "test_a_bulk_write_is_sent_in_full_segments": "bulk_data_in_half_segments",
    "test_ecn_setup_syn_is_answered_with_ece": "tcp_ecn=0",
    "test_differentiated_services_field_can_change": "ip_tos_fixed_at_first_use",
    "test_zero_window_probes_back_off": "zero_window_probes_at_a_fixed_interval",
    "test_receive_window_right_edge_never_moves_left": "window_shrinks_as_data_arrives",
    "test_no_new_data_beyond_a_shrunk_window": "sends_into_the_old_window_after_a_shrink",
    # RFC 6298 2.1 allows any initial RTO above 1 s: the breaker's is below it.
    "test_initial_rto_is_about_one_second": "tcp_rto_initial=300000000",
    "test_third_duplicate_ack_triggers_fast_retransmit": "fast_retransmit_after_ten_duplicates",
    "test_r2_is_at_least_100_seconds": "tcp_retries2=3",
    "test_small_segments_share_a_delayed_ack": "every_segment_acknowledged_at_once",
    "test_every_second_full_segment_is_acknowledged_without_delay":
        "full_segments_wait_for_the_timer",
    "test_nagle_holds_a_small_write_while_data_is_unacknowledged": "no_nagle",
    "test_keepalive_probe_carries_no_data": "keepalive_probe_with_a_garbage_octet",
    "test_hard_error_aborts_an_established_connection": "tcp_hard_error_aborts=0",
}

# Cases that only observe -> the breaker, the observation and its value when broken
OBSERVED_CASES = {
    "test_tcp_segments_carry_df": Observed("tcp_segments_without_df", "data_df", False),
}

# Second breakers, for what the cases check since the tester became a fair judge (issue
# "Fair judgement"): each broken stack passed the case as it was before and must not now.
SHARPENED_MUST_CASES = {
    "test_first_flight_is_within_the_initial_window": "slow_start_grows_twice_as_fast",
    "test_sender_does_not_fill_a_small_window_opening_at_once": "small_window_never_used",
    **{f"test_syn_to_broadcast_or_multicast_is_discarded[{address}]":
       "syn_to_broadcast_or_multicast_opens_silently" for address in DESTINATIONS},
    **{f"test_syn_from_an_invalid_source_is_ignored[{source}]":
       "syn_from_invalid_source_opens_silently" for source in INVALID_SOURCES},
}
SHARPENED_SHOULD_CASES = {
    "test_no_new_data_beyond_a_shrunk_window": "rewinds_into_the_old_window_after_a_shrink",
}

SLOW_CASES = frozenset({"test_r2_is_at_least_100_seconds",
                        "test_syn_retransmissions_last_at_least_3_minutes"})

BREAKAGES = Breakages(
    patch_files=[REPOSITORY / "tests" / name for name in ("broken_ref_tcp_data.py",
                                                         "broken_ref_tcp_icmp.py")],
    must=MUST_CASES, should=SHOULD_CASES, observed=OBSERVED_CASES, slow=SLOW_CASES)
SHARPENED = Breakages(patch_files=BREAKAGES.patch_files, must=SHARPENED_MUST_CASES,
                      should=SHARPENED_SHOULD_CASES, observed={})

@pytest.mark.parametrize("breaker", BREAKAGES.runs)
def test_cases_fail_on_a_stack_broken_in_what_they_check(tmp_path: Path, breaker: str) -> None:
    wrong = BREAKAGES.wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


@pytest.mark.parametrize("breaker", SHARPENED.runs)
def test_sharpened_cases_fail_on_their_second_breaker(tmp_path: Path, breaker: str) -> None:
    wrong = SHARPENED.wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


def test_every_case_of_the_six_modules_has_a_breaker() -> None:
    names = listed_cases(*MODULES)
    assert names - set(BREAKAGES.breaker) == set(), "cases without a breaker"
    assert set(BREAKAGES.breaker) - names == set(), "breakers for cases that do not exist"
    assert set(SHARPENED.breaker) - names == set(), "second breakers for cases that do not exist"


def test_every_patch_is_used() -> None:
    assert BREAKAGES.unused_patches() - set(SHARPENED.runs) == set()
