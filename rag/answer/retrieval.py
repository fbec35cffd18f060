"""Retrieval: a query into parents, best first (blocking work: callers run it in a thread).

The query is embedded (dense, unless the mode is sparse) and BM25-encoded (sparse, unless
the mode is dense), the store's search returns the top parents in one query, and the
optional cross-encoder (``rag.answer.rerank``) picks and orders them from a wider pool.
"""

from __future__ import annotations

from rag.answer.rerank import CrossEncoderReranker
from rag.documents import Hit
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder
from rag.settings import RetrievalMode, RetrievalSettings
from rag.store.qdrant_store import QdrantStore
from rag.store.search import SearchFilters


class Retriever:
    def __init__(
        self,
        settings: RetrievalSettings,
        embedder: Embedder,
        store: QdrantStore,
        reranker: CrossEncoderReranker | None = None,
    ) -> None:
        self.settings, self.embedder, self.store = settings, embedder, store
        self.sparse = BM25Encoder()
        self.reranker = reranker

    def retrieve(
        self, query: str, top_k: int, mode: RetrievalMode, filters: SearchFilters | None
    ) -> list[Hit]:
        """The best ``top_k`` parents for ``query`` (defaults resolved by the caller)."""
        dense = (
            self.embedder.embed_queries([query])[0].tolist()
            if mode is not RetrievalMode.sparse
            else None
        )
        sparse = self.sparse.encode_query(query) if mode is not RetrievalMode.dense else None
        if self.reranker is None:
            return self.store.search.search(dense, sparse, limit=top_k, filters=filters, mode=mode)
        pool = max(top_k, self.settings.rerank_candidates)  # the model chooses among more
        hits = self.store.search.search(dense, sparse, limit=pool, filters=filters, mode=mode)
        return self.reranker.rerank(query, hits, keep=top_k)
