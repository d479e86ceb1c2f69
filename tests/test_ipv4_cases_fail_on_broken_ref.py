"""Every IPv4 input, reassembly and host PMTU case fails against a reference stack broken
in the behaviour it checks (tests/broken_ref_ipv4.py), and passes against the stack as it
is (tests/test_ref_suites.py). For MAY requirements, which never fail, the observation
changes when the stack makes the other choice.

Cases that share a patch run together in one child run (one lab, one stack); each case's
verdict is still checked on its own.
"""

import re
from pathlib import Path

import pytest

from tests.suite_runner import REPOSITORY, case, privileged, run_suites

pytestmark = privileged

PATCHES = REPOSITORY / "tests" / "broken_ref_ipv4.py"
INVALID_SOURCES = ("zero", "loopback", "directed-broadcast", "limited-broadcast", "multicast")
# The reassembly timeout case waits 15 s to 130 s for Time Exceeded; with the timer at 16 s
# (a MAY, RFC 1122 3.3.2d, within what the case accepts) the broken run takes seconds.
SHORT_REASSEMBLY_TIMEOUT = ("--slow", "--ref-setting", "reassembly_timeout=16000000000")

# case -> (the patch that breaks what it checks, the verdict it then gets: "fail" for a
# MUST or MUST NOT, "warn" for a SHOULD)
CASES: dict[str, tuple[str, str]] = {
    # rfc1122/test_ipv4_input.py
    "test_version_other_than_4_is_silently_discarded": ("accept_any_version", "fail"),
    "test_bad_header_checksum_is_silently_discarded": ("accept_bad_header_checksum", "fail"),
    "test_header_length_below_five_words_is_discarded": ("accept_short_header_length", "fail"),
    "test_total_length_beyond_the_frame_is_discarded": (
        "accept_total_length_beyond_the_frame", "fail"),
    "test_octets_past_the_total_length_are_not_data": ("padding_is_data", "fail"),
    "test_unknown_options_are_ignored": ("drop_unknown_options", "fail"),
    "test_stream_identifier_option_is_ignored": ("drop_stream_identifier", "fail"),
    "test_datagram_at_the_end_of_its_source_route_is_delivered": ("drop_source_routed", "fail"),
    "test_malformed_option_draws_a_parameter_problem": (
        "malformed_options_dropped_without_parameter_problem", "warn"),
    "test_low_ttl_is_no_reason_to_discard[1]": ("discard_low_ttl", "fail"),
    "test_low_ttl_is_no_reason_to_discard[0]": ("discard_low_ttl", "fail"),
    **{f"test_invalid_source_address_is_silently_discarded[{kind}]":
       ("accept_invalid_sources", "fail") for kind in INVALID_SOURCES},
    "test_datagram_for_another_host_is_silently_discarded": (
        "accept_datagrams_for_other_hosts", "fail"),
    # rfc1122/test_reassembly.py
    "test_in_order_fragments_are_reassembled": ("never_reassemble", "fail"),
    "test_out_of_order_fragments_are_reassembled": ("reassemble_in_order_only", "fail"),
    "test_interleaved_datagrams_are_told_apart": ("reassembly_ignores_identification", "fail"),
    "test_datagram_larger_than_the_link_mtu_is_reassembled": (
        "reassemble_576_octets_at_most", "warn"),
    "test_incomplete_datagram_is_not_delivered": ("deliver_incomplete_datagrams", "fail"),
    "test_reassembly_timeout_sends_time_exceeded": ("keep_fragments_after_the_timeout", "fail"),
    "test_datagram_above_the_mtu_is_fragmented_on_send": (
        "send_oversize_datagrams_whole", "fail"),
    "test_fragmented_datagrams_carry_distinct_identifications": (
        "one_identification_for_all", "fail"),
    # rfc1191/test_pmtu_host.py
    "test_datagram_too_big_without_next_hop_mtu_lowers_the_estimate": (
        "ignore_datagram_too_big_without_next_hop_mtu", "fail"),
    "test_pmtudisc_dont_sends_without_df": ("pmtudisc_dont_is_ignored", "fail"),
}

# Breakers of checks added to a case after its first breaker: (case, patch or a
# "NAME=VALUE" --ref-setting, verdict). The case passed each of them before the check.
MORE_BREAKERS: list[tuple[str, str, str]] = [
    # A host that forwards (ARPs for the other host, relays the datagram).
    ("test_datagram_for_another_host_is_silently_discarded",
     "forward_datagrams_for_other_hosts", "fail"),
    # Reassembly that gives up after 2 s: slow fragments never make a datagram.
    ("test_reassembly_timeout_sends_time_exceeded", "reassembly_timeout=2000000000", "fail"),
    # IP_PMTUDISC_DONT refuses the oversize send (allowed) but sets DF on what it sends.
    ("test_datagram_above_the_mtu_is_fragmented_on_send", "pmtudisc_dont_is_taken_as_do",
     "fail"),
]

EXTRA_OPTIONS = {"keep_fragments_after_the_timeout": SHORT_REASSEMBLY_TIMEOUT,
                 "reassembly_timeout=2000000000": ("--slow",)}

# MAY requirement -> (case, the setting that makes the other choice, observation key,
# value with it; the unbroken stack observes the value in the comment)
MAY_CASES = {
    "RFC1122-3.3.2e": ("test_overlapping_fragments", "fragment_overlap=last_wins",
                       "overlapping_fragments", "reassembled"),  # "discarded"
    "RFC1191-5": ("test_datagram_too_big_without_next_hop_mtu_lowers_the_estimate",
                  "zero_next_hop_mtu=minimum", "estimate", 552),  # "plateau 1006"
}


def by_patch() -> dict[str, dict[str, str]]:
    """patch -> {case: the verdict it gets with that patch}"""
    groups: dict[str, dict[str, str]] = {}
    breakers = [(name, patch, verdict) for name, (patch, verdict) in CASES.items()]
    for name, patch, verdict in breakers + MORE_BREAKERS:
        groups.setdefault(patch, {})[name] = verdict
    return groups


def breaker_options(patch: str) -> tuple[str, ...]:
    """The options that break the stack: a --ref-setting for "NAME=VALUE", else a patch."""
    broken = ("--ref-setting", patch) if "=" in patch else ("--ref-patch", f"{PATCHES}:{patch}")
    return (*broken, *EXTRA_OPTIONS.get(patch, ()))


def selection(names: list[str]) -> str:
    """A -k expression for the cases (parameters off: -k cannot hold brackets)."""
    return " or ".join(sorted({name.partition("[")[0] for name in names}))


@pytest.mark.parametrize("patch", sorted(by_patch()))
def test_cases_fail_on_a_stack_broken_in_what_they_check(tmp_path: Path, patch: str) -> None:
    verdicts = by_patch()[patch]
    results = run_suites(tmp_path, "-k", selection(list(verdicts)), *breaker_options(patch),
                         target="ref")
    wrong = []
    for name, verdict in verdicts.items():
        entry = case(results, name)
        if entry["verdict"] != verdict:
            wrong.append(f"{name}: {entry['verdict']} ({entry['message']})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("requirement", sorted(MAY_CASES))
def test_may_choice_changes_the_observation(tmp_path: Path, requirement: str) -> None:
    name, setting, key, other_choice = MAY_CASES[requirement]
    results = run_suites(tmp_path, "-k", name, "--ref-setting", setting, target="ref")
    entry = case(results, name)
    assert entry["verdict"] in ("info", "pass"), entry["message"]
    assert entry["observations"][key] == other_choice


def test_every_case_of_the_three_modules_is_listed() -> None:
    """A case added to these modules needs its patch here."""
    names = set()
    for module in ("rfc1122/test_ipv4_input.py", "rfc1122/test_reassembly.py",
                   "rfc1191/test_pmtu_host.py"):
        text = (REPOSITORY / "suites" / module).read_text()
        names |= set(re.findall(r"^def (test_\w+)", text, re.MULTILINE))
    listed = {name.partition("[")[0] for name in CASES}
    listed |= {name for name, *_ in MAY_CASES.values()}
    assert names == listed
