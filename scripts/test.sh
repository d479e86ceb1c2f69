#!/usr/bin/env bash
# The project's tests: lint, types, the coverage gate, then every test (the privileged
# ones need root).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
mypy
conformance coverage --json > /dev/null  # exit 1 on a gap: a requirement with no case, no reason
python3 -m pytest -p no:cacheprovider -p no:benchmark -n 3 tests "$@"
