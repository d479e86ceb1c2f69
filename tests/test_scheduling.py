"""The parallel run's scheduler: each worker begins with one of the longest cases, then
takes the longest left, one at a time, as it finishes one."""

import os
from typing import Any

import pytest

from conformance.run.scheduling import LongestFirstScheduling
from conformance.run.session import workers_of
from conformance.run.spec import (
    CASES_PER_WORKER,
    WORKERS_PER_CPU,
    WORKERS_PER_CPU_WITHOUT_WIRESHARK,
    build_spec,
    default_workers,
    workers_for,
)
from conformance.targets.base import TargetOptions


class Config:
    """What xdist's load scheduling reads from pytest's config: the workers, no chunking."""

    def __init__(self, workers: int) -> None:
        self.values = {"tx": [f"{workers}*popen"], "maxschedchunk": None}

    def getvalue(self, name: str) -> Any:
        return self.values[name]

    getoption = getvalue


class Node:
    """A worker as the scheduler sees it: the cases it was sent, in order."""

    def __init__(self, name: str) -> None:
        self.sent: list[int] = []
        self.shutting_down = False
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def scheduler_with(workers: int, cases: int) -> tuple[LongestFirstScheduling, list[Node]]:
    scheduler = LongestFirstScheduling(Config(workers))  # type: ignore[arg-type]
    nodes = [Node(f"gw{n}") for n in range(workers)]
    collection = [f"case{n}" for n in range(cases)]  # longest first, as the plugin orders
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    return scheduler, nodes


def test_each_worker_begins_with_one_of_the_longest_and_one_short_case() -> None:
    _, nodes = scheduler_with(workers=4, cases=40)
    assert [node.sent for node in nodes] == [[0, 39], [1, 38], [2, 37], [3, 36]]


def test_a_worker_that_finishes_takes_the_longest_case_left() -> None:
    scheduler, nodes = scheduler_with(workers=2, cases=10)
    scheduler.mark_test_complete(nodes[1], 1)
    assert nodes[1].sent == [1, 8, 2]
    scheduler.mark_test_complete(nodes[1], 8)
    assert nodes[1].sent == [1, 8, 2, 3]
    scheduler.mark_test_complete(nodes[0], 0)
    assert nodes[0].sent == [0, 9, 4]


def test_few_cases_are_dealt_as_xdist_deals_them() -> None:
    _, nodes = scheduler_with(workers=4, cases=5)
    assert sorted(index for node in nodes for index in node.sent) == [0, 1, 2, 3, 4]


def test_workers_follow_the_cpus_and_the_cases_selected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers() == 2 * WORKERS_PER_CPU
    assert [workers_for(cases) for cases in (0, 1, CASES_PER_WORKER - 1)] == [1, 1, 1]
    assert workers_for(2 * CASES_PER_WORKER) == 2
    assert workers_for(248) == default_workers()
    # Without Wireshark's reads a case costs the tester a quarter of the CPU.
    assert default_workers(wireshark=False) == 2 * WORKERS_PER_CPU_WITHOUT_WIRESHARK
    assert workers_for(248, wireshark=False) == default_workers(wireshark=False) == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers() == 2


def test_a_run_of_one_case_is_serial_and_of_the_catalogue_parallel() -> None:
    # The cases are counted by a collection of the run's own selection.
    one = build_spec("ref", TargetOptions(), keyword="test_passive_open")
    assert workers_of(one) == 1
    assert workers_of(build_spec("ref", TargetOptions())) == default_workers()
    assert workers_of(build_spec("ref", TargetOptions(), workers=3)) == 3
    assert workers_of(build_spec("ref", TargetOptions(), wireshark=False)) == default_workers(
        wireshark=False)
