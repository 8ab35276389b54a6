#!/usr/bin/env bash
# Create .venv (if missing) and install babelrank into it with the given extras.
# torch 2.13.0 (CPU build) goes in first so the package's torch range resolves to it.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv 2>/dev/null || python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
  || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".${extras:+[$extras]}"
# the editable install's metadata lives in .venv; setuptools' build by-product in src/ (a copy of
# README.md among it) is not source
rm -rf src/*.egg-info
