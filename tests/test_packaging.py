"""The package installs: `pip install .` of a copy of the checkout into a new virtual
environment, then the tool used from another directory, as a new user would."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the package installed from a copy of the checkout's
    files (tracked or new, not ignored; no reference captures); its bin directory."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPOSITORY,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        if name.startswith("pcaps/") or not (REPOSITORY / name).is_file():
            continue
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, source / name)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    pip = subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "-q",
                          "--disable-pip-version-check", str(source)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return root / "venv" / "bin"


def tool(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    environment["COLUMNS"] = "400"
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False, env=environment)


def test_the_installed_package_imports_from_the_environment_not_the_checkout(
    installed: Path, tmp_path: Path,
) -> None:
    found = tool(installed, "python", "-c", "import conformance, suites; "
                 "print(conformance.__file__); print(list(suites.__path__)[0])", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    for line in found.stdout.split():
        assert str(installed.parent) in line and str(REPOSITORY) not in line


def test_list_works_from_another_directory(installed: Path, tmp_path: Path) -> None:
    listed = tool(installed, "conformance", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    cases = json.loads(listed.stdout)
    assert len(cases) > 200 and all(case["requirements"] for case in cases)
    coverage = tool(installed, "conformance", "coverage", "--json", cwd=tmp_path)
    assert coverage.returncode == 0, coverage.stderr


@pytest.mark.privileged
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")
def test_run_on_linux_and_report_work_from_another_directory(installed: Path,
                                                             tmp_path: Path) -> None:
    run = tool(installed, "conformance", "run", "--target", "linux", "-k", "test_udp_host",
               "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    results = json.loads((tmp_path / "run" / "linux" / "results.json").read_text())
    assert results["cases"] and all(case["verdict"] != "error" for case in results["cases"])
    assert (tmp_path / "run" / "report" / "index.html").exists()
    report = tool(installed, "conformance", "report", str(tmp_path / "run"), "--out",
                  str(tmp_path / "again"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "again" / "index.html").exists()
