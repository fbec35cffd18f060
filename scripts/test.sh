#!/usr/bin/env bash
# Set up everything, check lint, format and types, then run the whole test suite (vLLM,
# Qdrant, BGE, Chromium, Redis and the embedding server for real).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh
bash scripts/setup_redis.sh
bash scripts/check.sh
exec .venv/bin/python -m pytest "$@"
