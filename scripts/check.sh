#!/usr/bin/env bash
# The habits a maintainer relies on (run by scripts/test.sh before the tests):
# ruff's lint and format over the code, mypy over rag/, ingest/ and api/ (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[check] ruff check, ruff format --check, mypy"
.venv/bin/ruff check rag ingest api bench tests scripts
.venv/bin/ruff format --check rag ingest api bench tests scripts
.venv/bin/mypy
