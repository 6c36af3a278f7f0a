#!/usr/bin/env bash
# Set up everything ochat needs on a fresh Debian machine with Python 3.11:
# the .venv/ in the repo root (torch==2.13.0 CPU wheel, then the locked requirements.txt and
# requirements-nodeps.txt, then ochat itself in editable mode), Chromium for the browser tests, and plotly.js
# copied next to the static pages so they work offline.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${OCHAT_SKIP_APT:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Chromium (browser tests and page screenshots)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing Python packages (torch==2.13.0 CPU wheel first, then the lock in requirements.txt)"
# --no-compile: byte-compiling every installed file took half the install; Python compiles the modules it
# imports on first use instead (and caches them), most of torch's and transformers' files are never imported.
.venv/bin/pip install -q --no-compile torch==2.13.0
.venv/bin/pip install -q --no-compile -r requirements.txt
# Packages whose declared dependencies we never import (see scripts/lock.sh): pinned, hashed, --no-deps.
.venv/bin/pip install -q --no-compile --no-deps -r requirements-nodeps.txt
.venv/bin/pip install -q --no-compile --no-build-isolation --no-deps -e .

.venv/bin/python -m visualization.install_plotly
echo "== setup done: .venv ready"
