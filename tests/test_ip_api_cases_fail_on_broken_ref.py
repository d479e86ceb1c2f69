"""Every case of suites/rfc1122/test_ip_api.py and suites/rfc9293/test_urgent_api.py that
the reference stack can run fails (MUST) or warns (SHOULD) against the stack broken in
what it checks (tests/broken_ref_ip_api.py). The IP_OPTIONS case is n/a on the stack,
which sends no options of the application; Linux has no setting that breaks it."""

from pathlib import Path

import pytest

from tests.breakage import Breakages, listed_cases
from tests.suite_runner import REPOSITORY, privileged

pytestmark = privileged

MODULES = ("rfc1122/test_ip_api.py::", "rfc9293/test_urgent_api.py::")
NOT_APPLICABLE_ON_REF = {"test_udp_datagrams_carry_the_options_the_application_gives"}

INLINE_CASE = "test_urgent_data_over_two_segments_is_read_inline_up_to_its_mark"
SENT_CASE = "test_urgent_data_longer_than_a_segment_points_after_its_last_octet"

# case -> the breakers that must each make it fail
MUST_CASES = {
    "test_udp_receives_the_ip_options_of_a_datagram": ["received_options_not_passed_up"],
    "test_udp_learns_the_specific_destination_of_each_datagram":
        ["pktinfo_names_the_host_address"],
    INLINE_CASE: ["oobinline_ignored", "urgent_mark_never_reported",
                  "urgent_pointer_cut_at_the_segment_end", "urgent_data_never_polled"],
    SENT_CASE: ["urg_on_the_first_urgent_segment_only",
                "urgent_pointer_at_the_last_urgent_octet"],
}
SHOULD_CASES = {
    "test_udp_learns_the_tos_of_each_received_datagram": ["received_tos_always_zero"],
}

PATCHES = [REPOSITORY / "tests" / "broken_ref_ip_api.py"]


def breakages(index: int) -> Breakages:
    """The `index`-th breaker of every case that has that many: one table per round."""
    return Breakages(
        patch_files=PATCHES,
        must={case: breakers[index] for case, breakers in MUST_CASES.items()
              if index < len(breakers)},
        should={case: breakers[index] for case, breakers in SHOULD_CASES.items()
                if index < len(breakers)},
        observed={})


ROUNDS = [breakages(index) for index in range(max(map(len, MUST_CASES.values())))]
RUNS = [(index, breaker) for index, round_ in enumerate(ROUNDS) for breaker in round_.runs]


@pytest.mark.parametrize(("index", "breaker"), RUNS, ids=[breaker for _, breaker in RUNS])
def test_cases_fail_on_a_stack_broken_in_what_they_check(
    tmp_path: Path, index: int, breaker: str,
) -> None:
    wrong = ROUNDS[index].wrong_verdicts(tmp_path, breaker)
    assert not wrong, wrong


def test_every_case_the_stack_runs_has_a_breaker() -> None:
    names = listed_cases(*MODULES)
    assert names - set(MUST_CASES) - set(SHOULD_CASES) == NOT_APPLICABLE_ON_REF


def test_every_patch_is_used() -> None:
    used = {breaker for round_ in ROUNDS for breaker in round_.runs}
    assert ROUNDS[0].unused_patches() - used == set()
