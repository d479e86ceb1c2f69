"""Run every suite (slow cases included) against each target and keep the evidence of
every case as the committed examples under pcaps/reference/<target>/ (root).

    python scripts/refresh_reference_pcaps.py [TARGET ...]     (default: ref linux lwip)
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCES = REPOSITORY / "pcaps" / "reference"


def refresh(target: str) -> int:
    reference = REFERENCES / target
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "pytest", str(REPOSITORY / "suites"), "--target",
                   target, "--out", out, "--slow", "-p", "no:cacheprovider", "-q",
                   "-n", "2"]
        status = subprocess.run(command, cwd=REPOSITORY).returncode
        if status != 0:
            print(f"the run did not pass (exit {status}); reference captures left as they were")
            return status
        if reference.exists():
            shutil.rmtree(reference)
        reference.mkdir(parents=True)
        for path in sorted(Path(out, target).iterdir()):
            if path.suffix in (".pcapng", ".json"):
                shutil.copy2(path, reference / path.name)
    print(f"wrote {len(list(reference.glob('*.pcapng')))} captures to {reference}")
    return 0


def main() -> int:
    for target in sys.argv[1:] or ["ref", "linux", "lwip"]:
        status = refresh(target)
        if status != 0:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
