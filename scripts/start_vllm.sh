#!/usr/bin/env bash
# Start the local vLLM server in the background and wait until it serves the model.
# Usage: scripts/start_vllm.sh [PORT]   (default 8000). Writes its pid to $RAG_DATA_DIR/vllm.pid.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-8000}
MODEL_DIR=${RAG_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-service/models}
DATA_DIR=${RAG_DATA_DIR:-./data}
NAME=${RAG_LLM_MODEL:-smollm2-135m-instruct}
mkdir -p "$DATA_DIR"
if curl -fsS "http://127.0.0.1:$PORT/v1/models" 2>/dev/null | grep -q "\"$NAME\""; then
  echo "[vllm] already serving $NAME on port $PORT"; exit 0
fi
echo "[vllm] starting on 127.0.0.1:$PORT (log: $DATA_DIR/vllm.log)"
HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2} VLLM_NO_USAGE_STATS=1 \
  DO_NOT_TRACK=1 setsid .venv-vllm/bin/vllm serve "$MODEL_DIR/smollm2-135m-instruct" \
  --host 127.0.0.1 --port "$PORT" --served-model-name "$NAME" --max-model-len 8192 \
  --dtype bfloat16 --enforce-eager --enable-tokenizer-info-endpoint \
  > "$DATA_DIR/vllm.log" 2>&1 &
echo $! > "$DATA_DIR/vllm.pid"
exec bash scripts/wait_ready.sh vllm "http://127.0.0.1:$PORT/v1/models" "$DATA_DIR/vllm.pid" \
  "$DATA_DIR/vllm.log"
