#!/usr/bin/env bash
# Stop what scripts/run.sh started: the API and the local vLLM server (started with setsid,
# so Ctrl-C on a terminal would not reach it). Safe to run twice.
# Usage: scripts/stop.sh [api] [vllm]   (default: both)
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${RAG_DATA_DIR:-./data}
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(api vllm)
for name in "${names[@]}"; do
  pidfile="$DATA_DIR/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "[stop] stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
