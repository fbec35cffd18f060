#!/usr/bin/env bash
# The main job on a fresh machine: set up, start the local LLM, ingest the sample folder,
# then serve the API and the search page on http://127.0.0.1:${RAG_API_PORT:-8080}/ .
# Ctrl-C (or scripts/stop.sh from another terminal) stops the API and the vLLM server this
# script started; a vLLM server that was already running is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAG_CONFIG_FILE=${RAG_CONFIG_FILE:-configs/local.toml}
VLLM_PORT=${RAG_VLLM_PORT:-8000}
# The API must ask the port vLLM serves on (configs/local.toml says 8000).
export RAG_LLM_BASE_URL=${RAG_LLM_BASE_URL:-http://127.0.0.1:$VLLM_PORT/v1}
DATA_DIR=${RAG_DATA_DIR:-./data}
started_vllm=0
if ! curl -fsS "http://127.0.0.1:$VLLM_PORT/v1/models" >/dev/null 2>&1; then started_vllm=1; fi
cleanup() {
  if [ "$started_vllm" = 1 ]; then bash scripts/stop.sh api vllm; else bash scripts/stop.sh api; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bash scripts/start_vllm.sh "$VLLM_PORT"
echo "[run] ingesting samples/docs"
.venv/bin/python -m ingest samples/docs --prune || echo "[run] some files failed (see above)"
echo "[run] serving on http://${RAG_API_HOST:-127.0.0.1}:${RAG_API_PORT:-8080}/  (Ctrl-C stops)"
setsid .venv/bin/python -m api &
echo $! > "$DATA_DIR/api.pid"
wait $!
