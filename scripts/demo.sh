#!/usr/bin/env bash
# Quickstart main job: install, ingest the multilingual sample folder, ask in another language.
# Models come from the model hub, or offline from BABELRANK_MODEL_DIR (a folder of model folders).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh server,lingua
. .venv/bin/activate
export BABELRANK_STORE_PATH="${BABELRANK_STORE_PATH:-.babelrank/demo}"
babelrank ingest examples/data --collection demo
babelrank query "Where can I buy honey in the morning?" --collection demo -n 3
babelrank query "Коли відкривається бібліотека?" --collection demo -n 3
