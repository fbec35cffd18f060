"""Optional second stage: the offline MiniLM cross-encoder picks and orders the parents.

Retrieval fetches a wider pool than asked for (``RAG_RERANK_CANDIDATES`` parents); the
cross-encoder reads each parent's best ``RAG_RERANK_PASSAGES_PER_PARENT`` matched passages
(it reads at most 512 tokens, so it judges passages, never whole parents), a parent scores
as its best passage, and the best ``top_k`` parents are kept. So reranking can change which
parents a search returns and the packer sees, not only their order. Off by default: see
BENCHMARKS.md for what it buys and costs here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from rag.assets import reranker_path
from rag.documents import Hit


class CrossEncoderReranker:
    def __init__(self, model_dir: Path, passages_per_parent: int) -> None:
        """``passages_per_parent``: ``RAG_RERANK_PASSAGES_PER_PARENT`` (retrieval group)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        path = reranker_path(model_dir)
        if not (path / "onnx" / "model.onnx").is_file():
            raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh first")
        self._model = CrossEncoder(
            str(path), backend="onnx", device="cpu", model_kwargs={"file_name": "onnx/model.onnx"}
        )
        self._lock = threading.Lock()
        self.passages_per_parent = passages_per_parent

    def rerank(self, query: str, hits: list[Hit], keep: int | None = None) -> list[Hit]:
        """The best ``keep`` of ``hits`` (all by default), best first, scored by the model."""

        def score(texts: list[str]) -> list[float]:
            with self._lock:
                scores = self._model.predict(
                    [(query, text) for text in texts], batch_size=32, show_progress_bar=False
                )
            return [float(s) for s in scores]

        return by_best_passage(hits, self.passages_per_parent, score, keep)


def by_best_passage(
    hits: list[Hit],
    passages_per_parent: int,
    score: Callable[[list[str]], list[float]],
    keep: int | None = None,
) -> list[Hit]:
    """What every second stage does with its scores: each hit's best ``passages_per_parent``
    matched passages are scored (``score``: texts -> one score each, in one call), a parent
    scores as its best passage (``hit.score`` set to it), and the best ``keep`` parents are
    returned, best first. No passage read: the hits as they were, cut to ``keep``."""
    texts, owners = [], []
    for i, hit in enumerate(hits):
        for p in hit.passages[:passages_per_parent]:  # best retrieval matches first
            texts.append(hit.passage_text(p))
            owners.append(i)
    if not texts:
        return hits[:keep]
    best = [float("-inf")] * len(hits)
    for owner, value in zip(owners, score(texts)):
        best[owner] = max(best[owner], value)
    order = sorted(range(len(hits)), key=lambda i: -best[i])[:keep]
    reranked = []
    for i in order:
        hit = hits[i]
        hit.score = best[i]
        reranked.append(hit)
    return reranked
