#!/usr/bin/env bash
# The project's tests: lint, types, then every test (the privileged ones need root).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
mypy
python3 -m pytest -p no:cacheprovider -p no:benchmark -n 3 tests "$@"
