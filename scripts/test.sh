#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check harness tests benchmarks
mypy
python -m pytest -n 2 "$@"
