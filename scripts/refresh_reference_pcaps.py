"""Run every suite (slow cases included) against this machine's kernel and keep the
evidence of every case as the committed examples under pcaps/reference/linux/ (root).

    python scripts/refresh_reference_pcaps.py
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCE = REPOSITORY / "pcaps" / "reference" / "linux"


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "pytest", str(REPOSITORY / "suites"), "--target",
                   "linux", "--out", out, "--slow", "-p", "no:cacheprovider", "-q"]
        status = subprocess.run(command, cwd=REPOSITORY).returncode
        if status != 0:
            print(f"the run did not pass (exit {status}); reference captures left as they were")
            return status
        if REFERENCE.exists():
            shutil.rmtree(REFERENCE)
        REFERENCE.mkdir(parents=True)
        for path in sorted(Path(out, "linux").iterdir()):
            if path.suffix in (".pcapng", ".json") and path.name != "junit.xml":
                shutil.copy2(path, REFERENCE / path.name)
    print(f"wrote {len(list(REFERENCE.glob('*.pcapng')))} captures to {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
