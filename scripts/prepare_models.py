"""Prepare the embedding models, the late-interaction model and the Llama 3.1 tokenizer
under the model dir (idempotent).

Usage: .venv/bin/python scripts/prepare_models.py   (honours RAG_MODEL_DIR)
"""

from __future__ import annotations

from rag.assets import (
    prepare_bge_server_model,
    prepare_colbert_model,
    prepare_embedding_models,
    prepare_llama_tokenizer,
)
from rag.settings import load_settings

if __name__ == "__main__":
    settings = load_settings()
    bge, reranker = prepare_embedding_models(settings.model_dir, settings.query_instruction)
    tokenizer = prepare_llama_tokenizer(settings.model_dir)
    colbert = prepare_colbert_model(settings.model_dir)  # rag.answer.late_interaction
    # PyTorch weights of the same BGE, for an embedding server (RAG_EMBEDDING_URL)
    server_bge = prepare_bge_server_model(settings.model_dir)
    for path in (bge, reranker, colbert, tokenizer, server_bge):
        print(f"ready: {path}")
