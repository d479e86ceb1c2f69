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
    return out, run_suites(out, "-n", "2", target="ref")


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
    results = by_case(run_suites(tmp_path, "-n", "2", "--ref-patch", f"{VARIANTS}:mute",
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
    results = by_case(run_suites(tmp_path, "-n", "2", "--ref-patch", f"{VARIANTS}:late",
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
