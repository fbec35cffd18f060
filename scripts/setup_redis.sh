#!/usr/bin/env bash
# Redis for the ingestion queue (Celery's broker), from Debian's packages. Only the tests and
# a queue-backed deployment need it; the embedded default (scripts/run.sh) does not.
set -euo pipefail
if command -v redis-server >/dev/null; then
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[setup] installing Debian redis-server (ingestion queue)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
# Debian's package starts a system-wide instance; the tests start their own on a free port.
