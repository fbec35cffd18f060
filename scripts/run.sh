#!/usr/bin/env bash
# The main job on a fresh machine: set up, start the local LLM, ingest the sample folder,
# then serve the API and the search page on http://127.0.0.1:${RAG_API_PORT:-8080}/ .
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAG_CONFIG_FILE=${RAG_CONFIG_FILE:-configs/local.toml}
bash scripts/start_vllm.sh "${RAG_VLLM_PORT:-8000}"
echo "[run] ingesting samples/docs"
.venv/bin/python -m ingest samples/docs --prune || echo "[run] some files failed (see above)"
echo "[run] serving on http://${RAG_API_HOST:-127.0.0.1}:${RAG_API_PORT:-8080}/  (Ctrl-C stops)"
exec .venv/bin/python -m api
