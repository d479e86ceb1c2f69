"""Every TCP connection case (suites/rfc9293/: handshake, segment arrival in every state,
reset, closing, malformed segments, user calls, TIME-WAIT, accept queue) fails against a
reference stack broken in the behaviour it checks (tests/broken_ref_tcp.py,
tests/broken_ref_tcp_calls.py), and passes against the stack as it is. SHOULD cases warn
instead; MAY cases, which never fail, record a different observation.

Cases broken by the same patch run together, in one run of the suites per patch."""

from pathlib import Path

import pytest

from tests.breakage import Breakages, Observed, listed_cases
from tests.suite_runner import REPOSITORY, privileged

pytestmark = privileged

MODULES = ("test_handshake", "test_segment_arrival", "test_reset", "test_closing",
           "test_malformed_segments", "test_user_calls", "test_time_wait", "test_accept_queue")
SYNCHRONIZED = ("ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK")
ILLEGAL_OPTIONS = ("length-0", "length-1", "past-the-header")


def each(name: str, ids: tuple[str, ...], breaker: str) -> dict[str, str]:
    return {f"{name}[{id_}]": breaker for id_ in ids}


# case -> the patch (or "NAME=VALUE", a --ref-setting) that breaks what it checks
MUST_CASES = {
    # test_handshake.py
    "test_passive_open": "syn_without_mss",
    "test_active_open_syn_carries_mss": "syn_without_mss",
    "test_active_open": "syn_not_counted_in_the_acknowledgement",
    "test_simultaneous_open": "no_simultaneous_open",
    "test_rst_in_active_syn_received_refuses": "rst_in_active_syn_received_ignored",
    "test_rst_in_passive_syn_received_returns_to_listen":
        "rst_in_passive_syn_received_closes_the_listener",
    "test_connect_refused_by_rst": "rst_refusing_the_syn_ignored",
    "test_rst_not_acknowledging_the_syn_is_ignored": "syn_sent_accepts_any_rst",
    "test_synack_with_bad_ack_draws_reset": "bad_synack_silently_dropped",
    "test_isn_follows_a_clock": "isn_counted_per_connection",
    "test_listen_on_the_port_of_a_connecting_socket": "listen_refuses_a_port_in_use",
    "test_listen_does_not_disturb_a_connection": "listen_resets_connections_on_its_port",
    # test_segment_arrival.py: every state
    **each("test_unacceptable_segment_is_acknowledged", (*SYNCHRONIZED, "TIME-WAIT"),
           "unacceptable_segments_dropped_silently"),
    **each("test_rst_in_window_aborts_the_connection", SYNCHRONIZED, "rst_in_window_ignored"),
    **each("test_rst_out_of_window_is_ignored", SYNCHRONIZED, "rst_accepted_at_any_sequence"),
    **each("test_syn_in_synchronized_state", SYNCHRONIZED, "syn_opens_a_new_connection"),
    **each("test_fin_is_acknowledged", SYNCHRONIZED[:3], "fin_not_acknowledged"),
    **each("test_fin_is_acknowledged", SYNCHRONIZED[3:], "retransmitted_fin_not_acknowledged"),
    "test_ack_of_unsent_data_is_dropped": "ack_of_unsent_data_accepted",
    "test_queued_segments_are_acknowledged_once": "out_of_order_segments_dropped",
    # test_reset.py
    "test_segment_with_ack_to_a_closed_port_draws_rst": "reset_always_in_the_no_ack_form",
    "test_segment_without_ack_to_a_closed_port_draws_rst_ack":
        "reset_acknowledges_only_the_syn",
    "test_rst_to_a_closed_port_is_not_answered": "reset_answers_a_reset",
    "test_listener_ignores_rst": "listener_answers_rst",
    "test_listener_answers_ack_with_rst": "listener_ignores_ack",
    "test_rst_is_reported_to_a_blocked_recv": "reset_reported_as_end_of_file",
    "test_rst_is_processed_with_a_zero_window": "rst_unacceptable_with_zero_window",
    # test_closing.py
    "test_half_closed_connection_keeps_receiving": "no_receiving_after_local_close",
    "test_send_after_shutdown_fails": "send_in_any_state_succeeds",
    "test_send_without_a_connection_fails": "send_in_any_state_succeeds",
    "test_connect_on_a_connected_socket_fails": "connect_on_a_connected_socket_succeeds",
    "test_receive_after_fin_returns_data_then_eof": "fin_discards_unread_data",
    "test_simultaneous_close": "closing_skips_time_wait",
    "test_abort_sends_rst": "linger_zero_closes_gracefully",
    "test_fin_is_reported_as_end_of_file": "fin_not_reported_to_the_reader",
    # test_malformed_segments.py
    "test_bad_checksum_is_dropped": "checksum_not_verified",
    "test_syn_with_bad_checksum_is_ignored": "checksum_not_verified",
    **each("test_impossible_data_offset_is_dropped", ("below-5", "past-the-segment"),
           "impossible_data_offset_taken_as_five"),
    **each("test_illegal_option_length_in_syn", ILLEGAL_OPTIONS,
           "illegal_option_length_in_syn_closes_the_listener"),
    **each("test_illegal_option_length_on_data", ILLEGAL_OPTIONS,
           "illegal_option_length_makes_options_data"),
    "test_unknown_option_in_syn_is_skipped": "unknown_option_ends_the_walk",
    "test_unaligned_mss_option_is_honoured": "mss_read_only_as_the_first_option",
    "test_options_on_a_data_segment_are_accepted": "options_on_data_segments_dropped",
    "test_default_mss_is_536": "tcp_default_mss=1460",
    # test_user_calls.py
    "test_open_uses_the_bound_local_socket": "connect_ignores_the_bound_port",
    "test_ttl_is_configurable": "ttl_option_ignored",
    "test_type_of_service_is_set_by_the_application": "tos_option_ignored",
    # test_time_wait.py
    "test_time_wait_acknowledges_a_retransmitted_fin": "time_wait_ignores_a_retransmitted_fin",
    "test_reopened_connection_starts_above_the_old_sequence_space":
        "reopened_connection_reuses_the_old_isn",
    "test_old_duplicate_syn_does_not_reopen": "any_syn_reopens_time_wait",
    "test_time_wait_lasts_two_msl": "tcp_msl=5000000000",  # slow: 2 x 5 s, not 2 x 30 s
    # test_accept_queue.py
    "test_overflowing_accept_queue_hands_over_every_acknowledged_connection":
        "overflowing_connections_acknowledged_then_lost",
    "test_unanswered_synack_is_retransmitted_with_backoff":
        "synack_retransmitted_without_backoff",
}

# SHOULD and SHOULD NOT cases: they warn
SHOULD_CASES = {
    "test_isns_of_different_connections_are_unrelated": "isn_from_a_global_counter",
    "test_rst_carrying_data_resets": "rst_with_data_dropped",
    "test_close_with_unread_data_sends_rst": "close_with_unread_data_sends_fin",
    "test_data_after_close_draws_rst": "data_after_close_acknowledged",
    "test_type_of_service_changes_during_the_connection": "tos_fixed_at_connect",
}

# MAY case -> the breaker, the observation and its value on the changed stack
MAY_CASES = {
    "test_rst_in_window_but_not_at_rcv_nxt": Observed(
        "tcp_challenge_ack=0", "rst_not_at_rcv_nxt", "reset"),
    "test_new_syn_above_the_old_sequence_space_may_reopen": Observed(
        "time_wait_never_reopens", "answer_to_new_syn", "ack"),
    "test_rst_in_time_wait": Observed("tcp_rfc1337=1", "rst_in_time_wait", "ignored"),
    "test_bind_to_a_time_wait_address": Observed(
        "time_wait_frees_its_port", "bind_without_reuseaddr", "None"),
}

# MUST cases that check two things a stack can break apart: the second breaker
FURTHER_MUST_CASES = {
    "test_rst_in_passive_syn_received_returns_to_listen": "rst_in_passive_syn_received_ignored",
    "test_connect_on_a_connected_socket_fails": "connect_on_a_connected_socket_sends_a_syn",
    **each("test_illegal_option_length_in_syn", ILLEGAL_OPTIONS,
           "illegal_option_length_in_syn_makes_options_data"),
}

SLOW_CASES = frozenset({"test_time_wait_lasts_two_msl"})

PATCH_FILES = [REPOSITORY / "tests" / name for name in ("broken_ref_tcp.py",
                                                       "broken_ref_tcp_calls.py")]
BREAKAGES = Breakages(patch_files=PATCH_FILES, must=MUST_CASES, should=SHOULD_CASES,
                      observed=MAY_CASES, slow=SLOW_CASES)
FURTHER_BREAKAGES = Breakages(patch_files=PATCH_FILES, must=FURTHER_MUST_CASES, should={},
                              observed={})


@pytest.mark.parametrize("breaker", BREAKAGES.runs)
def test_cases_fail_on_a_stack_broken_in_what_they_check(tmp_path: Path, breaker: str) -> None:
    wrong = BREAKAGES.wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


@pytest.mark.parametrize("breaker", FURTHER_BREAKAGES.runs)
def test_cases_fail_on_a_stack_broken_in_their_second_check(tmp_path: Path,
                                                             breaker: str) -> None:
    wrong = FURTHER_BREAKAGES.wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


def test_every_case_of_the_connection_modules_has_a_breaker() -> None:
    names = listed_cases(*(f"rfc9293/{module}.py::" for module in MODULES))
    assert names - set(BREAKAGES.breaker) == set(), "cases without a breaker"
    assert set(BREAKAGES.breaker) - names == set(), "breakers for cases that do not exist"


def test_every_patch_is_used() -> None:
    assert BREAKAGES.unused_patches() & FURTHER_BREAKAGES.unused_patches() == set()
