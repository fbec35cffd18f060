#!/usr/bin/env bash
# Start a local embedding server: vLLM's pooling runner (the production engine, here on the
# CPU) serving the dequantized BGE prepared by scripts/prepare_models.py, with OpenAI's
# POST /v1/embeddings. Usage: scripts/start_embeddings.sh [PORT]   (default 8001).
# Writes its pid to $RAG_DATA_DIR/embeddings.pid. Point RAG_EMBEDDING_URL at
# http://127.0.0.1:PORT/v1 to use it.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-8001}
MODEL_DIR=${RAG_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-service/models}
DATA_DIR=${RAG_DATA_DIR:-./data}
NAME=${RAG_EMBEDDING_SERVER_MODEL:-bge-small-en-v1.5}
mkdir -p "$DATA_DIR"
if curl -fsS "http://127.0.0.1:$PORT/v1/models" 2>/dev/null | grep -q "\"$NAME\""; then
  echo "[embeddings] already serving $NAME on port $PORT"; exit 0
fi
echo "[embeddings] starting on 127.0.0.1:$PORT (log: $DATA_DIR/embeddings.log)"
HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_NO_USAGE_STATS=1 \
  DO_NOT_TRACK=1 setsid .venv-vllm/bin/vllm serve "$MODEL_DIR/bge-small-en-v1.5-fp32" \
  --host 127.0.0.1 --port "$PORT" --served-model-name "$NAME" --runner pooling \
  --dtype float32 --enforce-eager --max-model-len 512 \
  > "$DATA_DIR/embeddings.log" 2>&1 &
echo $! > "$DATA_DIR/embeddings.pid"
exec bash scripts/wait_ready.sh embeddings "http://127.0.0.1:$PORT/v1/models" "$DATA_DIR/embeddings.pid" \
  "$DATA_DIR/embeddings.log"
