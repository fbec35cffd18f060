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

from rag.assets import reranker_path
from rag.documents import Hit
from rag.settings import Settings


class CrossEncoderReranker:
    def __init__(self, settings: Settings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        path = reranker_path(settings.model_dir)
        if not (path / "onnx" / "model.onnx").is_file():
            raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh first")
        self._model = CrossEncoder(
            str(path), backend="onnx", device="cpu", model_kwargs={"file_name": "onnx/model.onnx"}
        )
        self._lock = threading.Lock()
        self.passages_per_parent = settings.rerank_passages_per_parent

    def rerank(self, query: str, hits: list[Hit], keep: int | None = None) -> list[Hit]:
        """The best ``keep`` of ``hits`` (all by default), best first, scored by the model."""
        pairs, owners = [], []
        for i, hit in enumerate(hits):
            for p in hit.passages[: self.passages_per_parent]:  # best retrieval matches first
                pairs.append((query, hit.passage_text(p)))
                owners.append(i)
        if not pairs:
            return hits[:keep]
        with self._lock:
            scores = self._model.predict(pairs, batch_size=32, show_progress_bar=False)
        best = [float("-inf")] * len(hits)
        for owner, score in zip(owners, scores):
            best[owner] = max(best[owner], float(score))
        order = sorted(range(len(hits)), key=lambda i: -best[i])[:keep]
        reranked = []
        for i in order:
            hit = hits[i]
            hit.score = best[i]
            reranked.append(hit)
        return reranked
