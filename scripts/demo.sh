#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole OpenChat loop on the bundled corpus
# with the tiny model: data -> DeepSpeed training -> server -> LLM judge -> visualizer.
# Flags go to `python -m ochat.demo` (see --help), e.g. --fresh or --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m ochat.demo "$@"
