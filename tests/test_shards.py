"""`conformance run --shard K/N` and `conformance merge`: shards of a selection, joined,
are one run."""

import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import UsageError
from conformance.run.spec import in_shard, parse_shard
from conformance.verdicts import EXIT_USAGE
from tests.test_cli import conformance_command, run_conformance

SELECTION = "test_udp_icmp_errors or test_ip_api or test_udp_host"
# What differs between two runs of the same cases, whatever they found.
RUN_DEPENDENT = ("duration_s", "lab_s")


def test_shards_take_every_case_of_a_selection_exactly_once() -> None:
    cases = [f"suite.py::case_{number:03d}" for number in range(251)]
    shards = [in_shard(cases, (index, 3)) for index in (1, 2, 3)]
    assert set().union(*shards) == set(cases)
    assert sum(len(shard) for shard in shards) == len(cases)
    assert sorted(len(shard) for shard in shards) == [83, 84, 84]
    assert in_shard(list(reversed(cases)), (2, 3)) == shards[1]  # the order given is moot


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_a_shard_is_k_of_n(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(text)


def test_a_bad_shard_is_a_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(conformance_command("run", "--shard", "4/3"), cwd=tmp_path,
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == EXIT_USAGE
    assert "K/N" in completed.stderr and "Traceback" not in completed.stderr


def comparable(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [{key: value for key, value in case.items() if key not in RUN_DEPENDENT}
            for case in results["cases"]]


def junit_cases(path: Path) -> list[tuple[str, str, list[str], list[tuple[str, str]]]]:
    suite = ElementTree.parse(path).getroot()
    return [(case.get("classname", ""), case.get("name", ""),
             sorted(child.tag for child in case if child.tag != "system-out"),
             [(prop.get("name", ""), prop.get("value", "")) for prop in case.iter("property")])
            for case in suite.iter("testcase")]


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_three_shards_merged_are_the_run_of_every_case(tmp_path: Path) -> None:
    whole = run_conformance("run", "--target", "linux", "-k", SELECTION, "--out",
                            str(tmp_path / "whole"), cwd=tmp_path)
    for index in (1, 2, 3):
        shard = run_conformance("run", "--target", "linux", "-k", SELECTION, "--shard",
                                f"{index}/3", "--out", str(tmp_path / f"shard{index}"),
                                cwd=tmp_path)
        assert shard.returncode == whole.returncode, shard.stdout + shard.stderr
    merged = run_conformance("merge", *(str(tmp_path / f"shard{index}") for index in (1, 2, 3)),
                             "--out", str(tmp_path / "merged"), cwd=tmp_path)
    assert merged.returncode == whole.returncode, merged.stdout + merged.stderr
    single = json.loads((tmp_path / "whole" / "linux" / "results.json").read_text())
    joined = json.loads((tmp_path / "merged" / "linux" / "results.json").read_text())
    assert len(single["cases"]) > 15
    assert comparable(joined) == comparable(single)
    assert joined["run"]["verdicts"] == single["run"]["verdicts"]
    assert joined["run"]["merged_shards"] == ["1/3", "2/3", "3/3"]
    assert junit_cases(tmp_path / "merged" / "linux" / "junit.xml") == \
        junit_cases(tmp_path / "whole" / "linux" / "junit.xml")
    assert f"{len(single['cases'])} cases from 1/3, 2/3, 3/3" in merged.stdout
    pages = sorted(path.name for path in (tmp_path / "merged" / "report" / "cases").iterdir())
    assert pages == sorted(path.name for path in
                           (tmp_path / "whole" / "report" / "cases").iterdir())
    assert len(pages) == len(single["cases"])
    pcaps = sorted(path.name for path in (tmp_path / "merged" / "linux").glob("*.pcapng"))
    assert pcaps == sorted(path.name for path in (tmp_path / "whole" / "linux").glob("*.pcapng"))

    # Two shards only: the third is reported missing, exit 1; the same shard twice: usage.
    partial = run_conformance("merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"),
                              "--out", str(tmp_path / "partial"), cwd=tmp_path)
    assert partial.returncode == 1 and "shards missing: 3/3" in partial.stderr
    twice = run_conformance("merge", str(tmp_path / "shard1"), str(tmp_path / "shard1"),
                            "--out", str(tmp_path / "twice"), cwd=tmp_path)
    assert twice.returncode == EXIT_USAGE and "not shards of one run" in twice.stderr
