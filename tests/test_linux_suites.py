"""The whole default suite against this machine's kernel: every case passes (or is info), but
the known deviations listed in suites/expectations/linux.toml, which get their listed verdict."""

from pathlib import Path

from tests.suite_runner import privileged, run_suites

pytestmark = privileged


def test_every_case_passes_on_the_default_kernel(tmp_path: Path) -> None:
    # Four workers, as `conformance run` has on two cores: the cases wait more than they
    # compute (single cases elsewhere run serially).
    results = run_suites(tmp_path, "-n", "4", wireshark=True)
    verdicts = {entry["id"]: entry["verdict"] for entry in results["cases"]}
    assert len(verdicts) >= 90
    bad = {entry["id"]: entry["verdict"] for entry in results["cases"]
           if entry["verdict"] not in ("pass", "info") and entry["expectation"] != "expected"}
    assert not bad, bad
    assert not [entry["id"] for entry in results["cases"] if entry["expectation"] == "unexpected"]
    assert results["exit_status"] == 0
    for entry in results["cases"]:
        assert (tmp_path / "linux" / entry["evidence"]).stat().st_size > 0
    assert (tmp_path / "linux" / "junit.xml").exists()
