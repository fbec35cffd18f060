"""Queries straight through the ONNX session sentence-transformers loaded: the same vectors,
half the time.

A search embeds one short question (and, with the follow-up hop, a second one) while the
client waits. sentence-transformers' ``encode`` wraps the ONNX graph in torch tensors and
optimum's input/output handling; for one 20-token query on 2 cores that wrapping cost as
much as the graph itself (6.9 ms vs 3.7 ms per query, BENCHMARKS.md "A million passages").
``OnnxQueryEncoder`` runs the *same* session (no second copy of the model in memory) with the
model's own tokenizer, truncated to its window as ``encode`` truncates, and the pooling and
normalisation the model declares.

Invariant: it exists only for a model whose modules are exactly Transformer -> CLS pooling
-> Normalize on an ONNX session (``of`` returns None otherwise, and the embedder keeps
``encode``); for those its vectors equal ``encode``'s (cosine >= 0.99999 over real
questions, checked by the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tokenizers import Tokenizer


class OnnxQueryEncoder:
    def __init__(self, session: Any, tokenizer: Tokenizer, max_length: int) -> None:
        self._session = session
        self._inputs = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self._tokenizer = tokenizer
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()

    @classmethod
    def of(cls, model: Any) -> OnnxQueryEncoder | None:
        """The encoder for a loaded ``SentenceTransformer``, or None when its modules are not
        the shape this reproduces (see the module notes)."""
        from sentence_transformers.models import Normalize, Pooling, Transformer

        modules = list(model)
        if len(modules) != 3:
            return None
        transformer, pooling, normalize = modules
        if not (
            isinstance(transformer, Transformer)
            and isinstance(pooling, Pooling)
            and isinstance(normalize, Normalize)
            and getattr(pooling, "pooling_mode", None) == "cls"
        ):
            return None
        session = getattr(getattr(transformer, "auto_model", None), "model", None)
        if not all(hasattr(session, a) for a in ("run", "get_inputs", "get_outputs")):
            return None  # not an ONNX backend (torch has no session to run)
        tokenizer = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        return cls(session, tokenizer, int(model.max_seq_length))

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 rows, one per text, ``batch_size`` texts per run."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(
            [self._batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        )

    def _batch(self, texts: list[str]) -> np.ndarray:
        """Padded to the longest text (CLS pooling reads the first position, which padding
        never touches; the attention mask keeps padding out of it)."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run([self._output], feed)[0]
        cls = np.asarray(hidden[:, 0], dtype=np.float32)
        norms = np.linalg.norm(cls, axis=1, keepdims=True)
        return cls / np.maximum(norms, 1e-12)
