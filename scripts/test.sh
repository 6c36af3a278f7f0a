#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite.
# Test files run in parallel (pytest-xdist), one file per worker at a time so module fixtures such as a
# started server are shared: one worker per core, at most 4 (OCHAT_TEST_WORKERS overrides; 0 runs serially).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k serving -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${OCHAT_SETUP_DONE:-0}" = 1 ] || bash scripts/setup.sh
mkdir -p test-artifacts
WORKERS="${OCHAT_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')}"
exec .venv/bin/python -m pytest tests -n "$WORKERS" --dist loadfile "$@"
