#!/usr/bin/env bash
# Install babelrank with its dev extras and run the whole test suite.
# Real-model tests run when BABELRANK_TEST_MODELS / BABELRANK_TEST_DATA name the shared folders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest -ra "$@"
