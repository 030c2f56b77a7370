#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The dashboard's browser test drives Debian's Chromium (nothing is downloaded at test time).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  { $SUDO apt-get update && $SUDO apt-get install -y chromium; } ||
    echo "test.sh: could not install chromium; the browser tests will be skipped" >&2
fi
. .venv/bin/activate
# A real PostgreSQL server for the multi-worker search tests (stopped at exit).
. scripts/postgres.sh
ruff check harness dashboard tests benchmarks
mypy
# worksteal: a worker that runs out of tests takes some of the other's (the long ones end the run)
python -m pytest -n 2 --dist worksteal --durations=20 "$@"
