#!/usr/bin/env bash
# Install babelrank with its dev and docs extras, build the docs strictly, and run the whole test suite.
# Real-model tests run when BABELRANK_TEST_MODELS / BABELRANK_TEST_DATA name the shared folders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev,docs
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# every internal link and anchor of docs/ must resolve (mkdocs.yml: strict, validation);
# not --quiet: it hides the warnings that strict mode counts, and the build passes broken links
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir "$site"
python -m pytest -ra "$@"
