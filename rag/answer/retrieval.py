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

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rag import tracing
from rag.answer.hops import FOLLOW_UP_PASSAGES, FollowUp, HopRetrieval
from rag.answer.rerank import CrossEncoderReranker
from rag.documents import Hit
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder, SparseVector
from rag.settings import RetrievalMode, RetrievalSettings
from rag.store.qdrant_store import QdrantStore
from rag.store.search import SearchFilters


@dataclass
class FirstHop:
    """The first search's parents (``limit`` of them: the reranker's pool when on) and
    when retrieval began (``time.monotonic()``, the hop budget's origin)."""

    hits: list[Hit]
    limit: int
    started: float


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
        self.hops = HopRetrieval(settings)

    def retrieve(
        self,
        query: str,
        top_k: int,
        mode: RetrievalMode,
        filters: SearchFilters | None,
        floor: RelevanceFloor | None = None,
        hops: bool = True,
        searched: list[str] | None = None,
    ) -> list[Hit]:
        """The best ``top_k`` parents for ``query`` (defaults resolved by the caller); none
        when the query is under the relevance ``floor`` (see the module notes). With
        ``retrieval_hops`` 2 (and ``hops``), follow-up searches seeded by the first one's
        best parents (``rag.answer.hops``), with the same ``mode`` and ``filters`` (scope);
        ``searched`` as in ``follow``."""
        first = self.first_hop(query, top_k, mode, filters, floor)
        return self.follow(first, query, top_k, mode, filters, hops=hops, searched=searched)

    def first_hop(
        self,
        query: str,
        top_k: int,
        mode: RetrievalMode,
        filters: SearchFilters | None,
        floor: RelevanceFloor | None = None,
    ) -> FirstHop:
        """The first search (no hits under the relevance ``floor``)."""
        started = time.monotonic()
        dense, sparse = self._vectors(query, mode)
        # With the cross-encoder, it chooses among more.
        limit = top_k if self.reranker is None else max(top_k, self.settings.rerank_candidates)
        if floor is not None and floor.on and dense is not None:
            with tracing.span("rag.relevance", rag_floor=floor.cosine) as checking:
                relevance = self.relevance(dense, sparse, filters)
                admitted = floor.admits(relevance)
                tracing.set_attrs(checking, rag_cosine=relevance.cosine, rag_admitted=admitted)
            if not admitted:
                return FirstHop([], limit, started)
        return FirstHop(self._search(dense, sparse, limit, mode, filters), limit, started)

    def follow(
        self,
        first: FirstHop,
        query: str,
        top_k: int,
        mode: RetrievalMode,
        filters: SearchFilters | None,
        planned: Sequence[FollowUp] | None = None,
        proposed: bool = False,
        hops: bool = True,
        searched: list[str] | None = None,
    ) -> list[Hit]:
        """``first`` extended by the follow-up hop (``planned``: the searches a
        ``HopDecomposer`` planned, else the deterministic ones; their budget counts from
        ``first.started``, or from now when ``proposed`` by the LLM, whose own timeout
        bounded the proposal) and reranked when the cross-encoder is on: the best ``top_k``.
        ``searched`` (the caller's list) gets each follow-up query searched, in order."""
        hits = first.hits
        if hits and hops and self.hops.on:

            def follow_up(text: str, n: int) -> list[Hit]:
                if searched is not None:
                    searched.append(text)
                dense, sparse = self._vectors(text, mode)
                passages = min(FOLLOW_UP_PASSAGES, self.settings.passages_per_parent)
                return self._search(dense, sparse, n, mode, filters, passages, widen=False)

            started = time.monotonic() if proposed else first.started
            with tracing.span("rag.hop", rag_first=len(hits)) as hopping:
                hits = self.hops.extend(query, hits, first.limit, follow_up, started, planned)
                tracing.set_attrs(
                    hopping, rag_added=sum(1 for h in hits if h.hop > 1), rag_hits=len(hits)
                )
        if self.reranker is None or not hits:
            return hits
        with tracing.span("rag.rerank", rag_candidates=len(hits), rag_keep=top_k) as reranking:
            hits = self.reranker.rerank(query, hits, keep=top_k)
            tracing.set_attrs(reranking, rag_hits=len(hits))
        return hits

    def _vectors(self, query: str, mode: RetrievalMode) -> tuple[list[float] | None, SparseVector]:
        with tracing.span(
            "rag.embed", rag_mode=mode.value, rag_query_chars=len(query)
        ) as embedding:
            dense = (
                self.embedder.embed_queries([query])[0].tolist()
                if mode is not RetrievalMode.sparse
                else None
            )
            sparse = self.sparse.encode_query(query)
            tracing.set_attrs(embedding, rag_dense=dense is not None, rag_terms=len(sparse.indices))
        return dense, sparse

    def _search(
        self,
        dense: list[float] | None,
        sparse: SparseVector,
        limit: int,
        mode: RetrievalMode,
        filters: SearchFilters | None,
        passages: int | None = None,
        widen: bool = True,
    ) -> list[Hit]:
        """``passages``: per parent (default: the setting's ``passages_per_parent``);
        ``widen``: as ``PassageSearch.search``'s."""
        with tracing.span("rag.search", rag_mode=mode.value, rag_limit=limit) as searching:
            hits = self.store.search.search(
                dense,
                sparse if mode is not RetrievalMode.dense else None,
                limit=limit,
                filters=filters,
                mode=mode,
                group_size=passages,
                widen=widen,
            )
            tracing.set_attrs(searching, rag_hits=len(hits))
        return hits

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
