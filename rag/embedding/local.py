"""Dense embeddings in-process through sentence-transformers (``rag.embedding.protocol``).

Hides the offline model layout (bundled bge-small int8 ONNX) and BGE's asymmetric use:
passages are embedded bare, queries with the retrieval instruction.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from rag.assets import bge_path
from rag.embedding.onnx_queries import OnnxQueryEncoder
from rag.settings import BUNDLED_BGE, EmbeddingSettings


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; the bundled BGE is the offline default."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = settings.embedding_model
        kwargs: dict = {"device": "cpu", "backend": settings.embedding_backend}
        if settings.embedding_model == BUNDLED_BGE:
            path = bge_path(settings.model_dir)
            if not (path / "onnx" / "model.onnx").is_file():
                raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh first")
            location = str(path)
            kwargs["backend"] = "onnx"
            kwargs["model_kwargs"] = {"file_name": "onnx/model.onnx"}
        else:
            location = settings.embedding_model
        self._model = SentenceTransformer(location, **kwargs)
        self._instruction = settings.query_instruction
        self._batch_size = settings.embedding_batch_size
        dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )  # renamed in sentence-transformers 5
        self.dimension = int(dimension() or 0)
        # Room left for [CLS] and [SEP] inside the model's window.
        self.max_tokens = int(self._model.max_seq_length) - 2
        # A private copy: encode() switches truncation on in the model's own tokenizer, and a
        # truncating counter would report 512 for any longer text and hide over-long passages.
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        # encode() (sentence-transformers' wrapping, the tokenizer's truncation switch) is
        # not re-entrant: passages one batch at a time; questions on the shared session too
        # (so as not to share its intra-op pool with a batch; rag.embedding.onnx_queries).
        self._lock = threading.Lock()
        # Questions without encode()'s wrapping (same vectors), on their own session.
        self._queries = OnnxQueryEncoder.of(self._model, settings.query_threads)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count_tokens(self, text: str) -> int:
        """Tokens including [CLS]/[SEP], as the model will see them."""
        return len(self._tokenizer.encode(text, add_special_tokens=True).ids)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self.encoded(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Questions; on their own session they do not wait for passages being embedded
        (``rag.embedding.onnx_queries``)."""
        prompted = [self._instruction + t for t in texts]
        if self._queries is not None and not self._queries.shared:
            return self._queries.encode(prompted, self._batch_size)
        with self._lock:
            if self._queries is not None:
                return self._queries.encode(prompted, self._batch_size)
            return self.encoded(texts, self._instruction)

    def encoded(self, texts: list[str], prompt: str | None = None) -> np.ndarray:
        """sentence-transformers' own ``encode`` (``prompt`` prefixed): passages, queries of a
        model the direct path does not reproduce, and the reference the tests compare it to.
        Callers hold the lock."""
        return self._model.encode(
            texts,
            prompt=prompt,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
