#!/usr/bin/env bash
# Wait until a server started in the background answers, or say why not.
# Usage: scripts/wait_ready.sh LABEL URL PIDFILE LOGFILE   (used by start_vllm.sh and
# start_embeddings.sh; 300 s at most)
set -euo pipefail
LABEL=$1; URL=$2; PIDFILE=$3; LOG=$4
for _ in $(seq 1 300); do
  if curl -fsS "$URL" >/dev/null 2>&1; then
    echo "[$LABEL] ready"; exit 0
  fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "[$LABEL] exited; last log lines:"; tail -n 30 "$LOG"; exit 1
  fi
  sleep 1
done
echo "[$LABEL] not ready after 300 s"; tail -n 30 "$LOG"; exit 1
