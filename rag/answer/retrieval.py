"""Retrieval: a query into parents, best first (blocking work: callers run it in a thread).

The query is embedded (dense, unless the mode is sparse) and BM25-encoded (sparse, unless
the mode is dense), the store's search returns the top parents in one query, and the
optional cross-encoder (``rag.answer.rerank``) picks and orders them from a wider pool.

The relevance floor (``RelevanceFloor``, the answer path's): dense search always returns
neighbours, however unrelated the question, and fused (RRF) scores are ranks, not
similarities, so the floor compares the dense cosine of the best passage (``relevance``),
whatever the mode fuses: under it, nothing matched. BGE's cosines of gibberish and of real
questions overlap (a made-up question scores 0.52-0.61, the worst real ones 0.57), so a
question none of whose terms any passage holds needs a higher cosine: real questions share
terms with the documents they are about, gibberish shares none. Sparse mode has no floor (a
query sharing no term with the corpus matches nothing there anyway). ``python -m bench
relevance`` calibrates both on the dev sets (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.answer.rerank import CrossEncoderReranker
from rag.documents import Hit
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder, SparseVector
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
        self,
        query: str,
        top_k: int,
        mode: RetrievalMode,
        filters: SearchFilters | None,
        floor: RelevanceFloor | None = None,
    ) -> list[Hit]:
        """The best ``top_k`` parents for ``query`` (defaults resolved by the caller); none
        when the query is under the relevance ``floor`` (see the module notes)."""
        dense = (
            self.embedder.embed_queries([query])[0].tolist()
            if mode is not RetrievalMode.sparse
            else None
        )
        sparse = self.sparse.encode_query(query)
        if floor is not None and floor.on and dense is not None:
            if not floor.admits(self.relevance(dense, sparse, filters)):
                return []
        # With the cross-encoder, it chooses among more.
        limit = top_k if self.reranker is None else max(top_k, self.settings.rerank_candidates)
        hits = self.store.search.search(
            dense,
            sparse if mode is not RetrievalMode.dense else None,
            limit=limit,
            filters=filters,
            mode=mode,
        )
        return hits if self.reranker is None else self.reranker.rerank(query, hits, keep=top_k)

    def relevance(
        self, dense: list[float], sparse: SparseVector, filters: SearchFilters | None = None
    ) -> Relevance:
        """How relevant the corpus (within ``filters``) is to the query with these vectors:
        the dense cosine of its best passage, and whether any passage holds a query term."""
        best = self.store.search.search(
            dense, None, limit=1, filters=filters, mode=RetrievalMode.dense, group_size=1
        )
        terms = bool(sparse.indices) and bool(
            self.store.search.search(
                None, sparse, limit=1, filters=filters, mode=RetrievalMode.sparse, group_size=1
            )
        )
        return Relevance(best[0].score if best else None, terms)


@dataclass(frozen=True)
class Relevance:
    cosine: float | None  # the best passage's dense cosine; None: nothing stored matches
    terms: bool  # some passage holds a term of the query (a BM25 match)


@dataclass(frozen=True)
class RelevanceFloor:
    """Under ``cosine`` a question is refused; one of whose terms no passage holds (made-up
    words, keyboard mash) needs ``cosine_without_terms`` (the higher). 0 and 0: off."""

    cosine: float = 0.0
    cosine_without_terms: float = 0.0

    @classmethod
    def of(cls, settings: RetrievalSettings) -> RelevanceFloor:
        return cls(settings.min_relevance, settings.min_relevance_without_terms)

    @property
    def on(self) -> bool:
        return self.cosine > 0 or self.cosine_without_terms > 0

    def admits(self, relevance: Relevance) -> bool:
        if relevance.cosine is None:
            return False
        wanted = self.cosine if relevance.terms else max(self.cosine, self.cosine_without_terms)
        return relevance.cosine >= wanted
