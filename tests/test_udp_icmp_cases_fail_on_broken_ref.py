"""Every case of suites/rfc768/test_udp.py, suites/rfc1122/test_udp_host.py and
suites/rfc1122/test_icmp.py fails against a reference stack broken in the behaviour it
checks (tests/broken_ref_udp_icmp.py), and passes against the stack as it is
(tests/test_ref_suites.py). SHOULD cases warn instead; MAY cases, which never fail, record
a different observation.

Cases broken by the same patch run together, in one run of the suites per patch."""

from pathlib import Path

import pytest

from tests.breakage import Breakages, Observed, listed_cases
from tests.suite_runner import REPOSITORY, privileged

pytestmark = privileged

# case -> the patch (or "NAME=VALUE", a --ref-setting) that breaks what it checks
MUST_CASES = {
    # rfc768/test_udp.py
    "test_sent_datagrams_carry_a_correct_checksum": "checksum_sent_without_pseudo_header",
    "test_a_checksum_computing_to_zero_is_sent_as_all_ones": "computed_zero_checksum_sent_as_zero",
    "test_a_zero_checksum_means_none_and_the_datagram_is_delivered":
        "zero_checksum_treated_as_bad",
    "test_a_bad_checksum_datagram_is_not_delivered": "checksum_not_verified",
    "test_a_bad_checksum_datagram_draws_no_port_unreachable": "checksum_not_verified",
    "test_the_checksum_covers_the_pseudo_header": "checksum_verified_without_pseudo_header",
    "test_a_length_beyond_the_ip_payload_is_dropped": "udp_length_beyond_the_payload_accepted",
    "test_a_length_below_the_header_size_is_dropped": "udp_length_below_the_header_accepted",
    "test_octets_beyond_the_udp_length_are_not_delivered":
        "octets_beyond_the_udp_length_delivered",
    "test_a_truncated_udp_header_is_dropped": "truncated_header_accepted",
    "test_datagrams_go_to_the_destination_port_and_replies_to_the_source_port":
        "demux_ignores_the_destination_port",
    "test_source_port_zero_is_accepted": "source_port_zero_dropped",
    # rfc1122/test_udp_host.py
    "test_sent_datagram_has_sane_defaults": "default_ttl=0",
    "test_application_sets_ttl_and_tos": "ip_tos_option_ignored",
    "test_application_chooses_the_local_address": "sends_from_another_port_than_bound",
    "test_application_learns_the_maximum_datagram_size": "ip_mtu_reports_the_payload_room",
    "test_broadcast_needs_so_broadcast": "broadcast_without_so_broadcast",
    "test_connected_socket_receives_only_from_its_peer": "connected_socket_accepts_any_source",
    "test_one_datagram_per_receive_truncated_with_msg_trunc": "msg_trunc_not_reported",
    "test_msg_peek_leaves_the_datagram": "msg_peek_consumes",
    "test_dontwait_receive_on_empty_socket_fails_with_eagain": "empty_receive_returns_nothing",
    "test_udp_cork_joins_sends_into_one_datagram": "udp_cork_ignored",
    # rfc1122/test_icmp.py
    "test_echo_reply_returns_the_data_unchanged": "echo_reply_with_altered_data",
    "test_unknown_icmp_type_is_silently_discarded": "unknown_icmp_type_draws_parameter_problem",
    "test_address_mask_request_is_not_answered": "answers_address_mask_requests",
    "test_timestamp_reply_if_implemented": "timestamp_reply_in_seconds",
    "test_icmp_error_quotes_the_header_and_eight_octets": "error_quotes_the_header_only",
    "test_no_error_about_an_icmp_error": "error_about_an_icmp_error",
    "test_no_error_about_a_non_initial_fragment": "error_about_a_non_initial_fragment",
    "test_no_error_about_a_datagram_to_broadcast": "error_about_a_datagram_to_broadcast",
    "test_no_error_about_a_datagram_to_multicast": "error_about_a_datagram_to_multicast",
    "test_no_error_about_a_link_layer_broadcast": "link_broadcast_not_passed_up",
    "test_time_exceeded_is_passed_up": "time_exceeded_not_passed_up",
    "test_parameter_problem_is_passed_up": "parameter_problem_not_passed_up",
}

# SHOULD and SHOULD NOT cases: they warn
SHOULD_CASES = {
    "test_wildcard_socket_learns_the_address_chosen": "connect_keeps_the_wildcard_address",
    "test_echo_reply_returns_record_route_updated": "record_route_returned_unchanged",
    "test_information_request_is_not_answered": "answers_information_requests",
    "test_closed_port_draws_port_unreachable": "closed_port_is_silent",
    "test_unknown_protocol_draws_protocol_unreachable": "unknown_protocol_is_silent",
    "test_icmp_error_with_a_short_quote_is_ignored": "short_quote_accepted",
    "test_icmp_error_naming_no_socket_is_ignored": "quoted_source_port_not_checked",
    "test_icmp_error_with_a_malformed_quote_is_ignored": "quoted_header_length_not_checked",
}

# MAY case -> the breaker, the observation and its value on the changed stack
MAY_CASES = {
    "test_unbound_socket_gets_an_ephemeral_port": Observed(
        "ephemeral_ports=1024,4999", "ephemeral_range", "1024-65535 (all unprivileged ports)"),
    "test_fionread_reports_what_is_queued": Observed(
        "fionread_reports_all_queued", "fionread", "all queued"),
    "test_echo_request_to_broadcast": Observed(
        "icmp_echo_ignore_broadcasts=0", "echo_to_broadcast", "answered"),
    "test_burst_of_errors_is_rate_limited": Observed(
        "icmp_rate_burst=20", "port_unreachables_for_20_datagrams", 20),
}

BREAKAGES = Breakages(patch_files=[REPOSITORY / "tests" / "broken_ref_udp_icmp.py"],
                      must=MUST_CASES, should=SHOULD_CASES, observed=MAY_CASES)

@pytest.mark.parametrize("breaker", BREAKAGES.runs)
def test_cases_fail_on_a_stack_broken_in_what_they_check(tmp_path: Path, breaker: str) -> None:
    wrong = BREAKAGES.wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


def test_every_case_of_the_three_modules_has_a_breaker() -> None:
    names = listed_cases("rfc768/test_udp.py::", "rfc1122/test_udp_host.py::",
                         "rfc1122/test_icmp.py::")
    assert names - set(BREAKAGES.breaker) == set(), "cases without a breaker"
    assert set(BREAKAGES.breaker) - names == set(), "breakers for cases that do not exist"


def test_every_patch_is_used() -> None:
    assert BREAKAGES.unused_patches() == set()
