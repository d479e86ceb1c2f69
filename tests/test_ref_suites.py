"""The whole default suite against the reference stack, as it is, deaf, and slow.

As it is, every case passes or is info; only what the stack does not implement may be not
applicable: the optional ICMP Timestamp reply, IP options given by the application
(IP_OPTIONS) and the received TOS on TCP (IP_RECVTOS); nothing fails, nothing errs.

A tester that judges fairly also fails a stack that hears nothing on every case, and judges
a stack that answers every frame 0.6 s late (tests/ref_variants.py) exactly as the normal
one, except where a case judges how soon the DUT answers, and then says it answered late.
"""

from pathlib import Path
from typing import Any

import pytest

from tests.suite_runner import REPOSITORY, privileged, run_suites

pytestmark = privileged

VARIANTS = REPOSITORY / "tests" / "ref_variants.py"
NOT_IMPLEMENTED = ("timestamp_reply_if_implemented",
                   "test_udp_datagrams_carry_the_options_the_application_gives",
                   "test_an_active_open_can_give_a_source_route",
                   "test_record_route_may_be_sent_on_segments",
                   "test_received_differentiated_services_field_may_be_passed_up")


def by_case(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in results["cases"]}


@pytest.fixture(scope="module")
def normal_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("normal")
    return out, run_suites(out, "-n", "4", target="ref", wireshark=True)


def test_every_case_passes_on_the_reference_stack(
    normal_run: tuple[Path, dict[str, Any]]
) -> None:
    out, results = normal_run
    verdicts = {case_id: entry["verdict"] for case_id, entry in by_case(results).items()}
    assert len(verdicts) >= 20
    bad = {case: verdict for case, verdict in verdicts.items()
           if verdict not in ("pass", "info", "n/a")}
    assert not bad, bad
    not_applicable = [case for case, verdict in verdicts.items() if verdict == "n/a"]
    assert all(any(part in case for part in NOT_IMPLEMENTED) for case in not_applicable), (
        not_applicable)
    assert results["exit_status"] == 0
    for entry in results["cases"]:
        assert (out / "ref" / entry["evidence"]).stat().st_size > 0


def test_no_case_passes_a_stack_that_hears_nothing(tmp_path: Path) -> None:
    # Ten workers: a deaf stack's cases do little but wait out their deadlines, and no
    # verdict here depends on timing (every one must fail).
    results = by_case(run_suites(tmp_path, "-n", "10", "--ref-patch", f"{VARIANTS}:mute",
                                 target="ref"))
    praised = {case_id: (entry["verdict"], entry["message"][:200])
               for case_id, entry in results.items() if entry["verdict"] in ("pass", "info")}
    assert results and not praised, praised
    # n/a only where the stack lacks the facility, never for its silence.
    excused = {case_id for case_id, entry in results.items() if entry["verdict"] == "n/a"}
    assert all(any(part in case for part in NOT_IMPLEMENTED) for case in excused), excused


def test_a_late_stack_is_judged_as_the_normal_one(
    tmp_path: Path, normal_run: tuple[Path, dict[str, Any]]
) -> None:
    normal = by_case(normal_run[1])
    # Eight workers (a run's default without Wireshark's reads, which this does not
    # judge): the late stack's cases mostly wait out its 0.6 s.
    results = by_case(run_suites(tmp_path, "-n", "8", "--ref-patch", f"{VARIANTS}:late",
                                 target="ref"))
    assert set(results) == set(normal)
    # A case judging how soon the DUT answers may change its verdict, and must say why.
    misjudged = {
        case_id: (normal[case_id]["verdict"], entry["verdict"], entry["message"][:300])
        for case_id, entry in results.items()
        if entry["verdict"] != normal[case_id]["verdict"]
        and "late" not in entry["message"].lower()
    }
    assert not misjudged, misjudged


# One breaker per suite module (case selection, breaker file, patch): on the late stack
# too, each case still fails (or warns) when the stack is broken in what it checks.
LATE_AND_BROKEN = [
    ("test_a_bad_checksum_datagram_draws_no_port_unreachable", "broken_ref_udp_icmp.py",
     "checksum_not_verified"),
    ("test_address_mask_request_is_not_answered", "broken_ref_udp_icmp.py",
     "answers_address_mask_requests"),
    ("test_datagram_for_another_host_is_silently_discarded", "broken_ref_ipv4.py",
     "forward_datagrams_for_other_hosts"),
    ("test_incomplete_datagram_is_not_delivered", "broken_ref_ipv4.py",
     "deliver_incomplete_datagrams"),
    ("test_udp_cork_joins_sends_into_one_datagram", "broken_ref_udp_icmp.py",
     "udp_cork_ignored"),
    ("test_connected_socket_reports_port_unreachable_on_send", "broken_ref.py",
     "send_ignores_pending_error"),
    ("test_oversize_send_fails_and_fitting_datagrams_go_out", "broken_ref.py",
     "sends_ignore_the_path_mtu"),
    ("test_pmtudisc_dont_sends_without_df", "broken_ref_ipv4.py", "pmtudisc_dont_is_ignored"),
    ("test_udp_learns_the_specific_destination_of_each_datagram", "broken_ref_ip_api.py",
     "pktinfo_names_the_host_address"),
    ("test_urgent_data_over_two_segments_is_read_inline_up_to_its_mark",
     "broken_ref_ip_api.py", "urgent_mark_never_reported"),
    ("test_rst_in_passive_syn_received_returns_to_listen", "broken_ref_tcp.py",
     "rst_in_passive_syn_received_ignored"),
    ("test_connect_on_a_connected_socket_fails", "broken_ref_tcp_calls.py",
     "connect_on_a_connected_socket_sends_a_syn"),
    ("test_rst_to_a_closed_port_is_not_answered", "broken_ref_tcp.py", "reset_answers_a_reset"),
    ("test_syn_in_synchronized_state", "broken_ref_tcp.py", "syn_opens_a_new_connection"),
    ("test_illegal_option_length_in_syn", "broken_ref_tcp_calls.py",
     "illegal_option_length_in_syn_makes_options_data"),
    ("test_old_duplicate_syn_does_not_reopen", "broken_ref_tcp.py", "any_syn_reopens_time_wait"),
    ("test_ttl_is_configurable", "broken_ref_tcp_calls.py", "ttl_option_ignored"),
    ("test_unanswered_synack_is_retransmitted_with_backoff", "broken_ref_tcp_calls.py",
     "synack_retransmitted_without_backoff"),
    ("test_segments_never_exceed_the_announced_mss", "broken_ref_tcp_data.py",
     "peer_mss_ignored"),
    ("test_zero_window_is_probed_until_it_opens", "broken_ref_tcp_data.py",
     "zero_window_never_probed"),
    ("test_unacknowledged_data_is_retransmitted_with_backoff", "broken_ref_tcp_data.py",
     "data_retransmitted_at_a_fixed_interval"),
    ("test_small_segments_share_a_delayed_ack", "broken_ref_tcp_data.py",
     "every_segment_acknowledged_at_once"),
    ("test_unanswered_keepalive_is_not_a_dead_connection", "broken_ref_tcp_data.py",
     "keepalive_gives_up_after_one_unanswered_probe"),
    ("test_syn_from_an_invalid_source_is_ignored", "broken_ref_tcp_icmp.py",
     "syn_from_invalid_source_opens_silently"),
]


@pytest.mark.parametrize(("selection", "patch_file", "patch"), LATE_AND_BROKEN,
                         ids=[patch for _, _, patch in LATE_AND_BROKEN])
def test_a_late_stack_broken_in_what_a_case_checks_still_fails_it(
    tmp_path: Path, selection: str, patch_file: str, patch: str
) -> None:
    results = run_suites(tmp_path, "-k", selection, "--ref-patch", f"{VARIANTS}:late",
                         "--ref-patch", f"{REPOSITORY / 'tests' / patch_file}:{patch}",
                         target="ref")
    assert results["cases"], f"-k {selection} selected nothing"
    praised = {entry["id"]: (entry["verdict"], entry["message"][:200])
               for entry in results["cases"] if entry["verdict"] not in ("fail", "warn")}
    assert not praised, praised
