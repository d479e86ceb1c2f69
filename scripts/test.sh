#!/usr/bin/env bash
# The project's tests: lint, types, the coverage gate, then every test (the privileged
# ones need root), with the tools of the virtual environment scripts/setup.sh made.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi
ruff check .
mypy
conformance coverage --json > /dev/null  # exit 1 on a gap: a requirement with no case, no reason
python3 -m pytest -p no:cacheprovider -p no:benchmark -n 3 --durations=25 tests "$@"
