"""The whole default suite against this machine's kernel: every case passes (or is info)."""

from pathlib import Path

from tests.suite_runner import privileged, run_suites

pytestmark = privileged


def test_every_case_passes_on_the_default_kernel(tmp_path: Path) -> None:
    results = run_suites(tmp_path)
    verdicts = {entry["id"]: entry["verdict"] for entry in results["cases"]}
    assert len(verdicts) >= 20
    bad = {case: verdict for case, verdict in verdicts.items() if verdict not in ("pass", "info")}
    assert not bad, bad
    assert results["exit_status"] == 0
    for entry in results["cases"]:
        assert (tmp_path / "linux" / entry["evidence"]).stat().st_size > 0
    assert (tmp_path / "linux" / "junit.xml").exists()
