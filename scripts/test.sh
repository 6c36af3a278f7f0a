#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${OCHAT_SETUP_DONE:-0}" = 1 ] || bash scripts/setup.sh
mkdir -p test-artifacts
exec .venv/bin/python -m pytest tests "$@"
