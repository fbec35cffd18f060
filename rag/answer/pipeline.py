"""The two use cases, search and answer, each read top-down from the components they use.
(~390 lines: the one owner of both use cases; each stage is a component of its own module,
what stays here is their order, the spans and timings around them, and the request checks.)

``search`` is synchronous (embedding and Qdrant are CPU/IO work the API runs in a thread).
``answer`` is the answer use case as one stream of typed events (``rag.answer.events``):

    rewrite?  -> rag.answer.rewrite     the search query of a follow-up (history only)
    retrieve  -> rag.answer.retrieval   parents for that query: the first hop (checked
                 rag.answer.decompose   first), the follow-up searches planned from it
                                        (the LLM's, when on, else rag.answer.hops'), fused
    pack      -> rag.answer.packing     sources and history within the budget, proved exactly
    generate  -> rag.answer.generation  the LLM's streamed answer
    cite      -> rag.answer.citations   what its [n] markers turned out to be

each entered once. What the served model is (tokenizer, window, special tokens) is found
at start (``rag.answer.model_info``) and shared by the packer and the rewriter. Adapters
(HTTP, benchmarks) only translate the events. No step computes or blocks on the event loop:
searches and the CPU steps (counting, escaping, packing, citations) run in the bounded pools
of ``rag.answer.workers``, sized here from the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from rag import tracing
from rag.access.scope import ReadScope
from rag.answer.citations import CitationCheck, parse_citations
from rag.answer.conversation import turns_of
from rag.answer.decompose import HopDecomposer, PlanNote
from rag.answer.events import (
    NO_MATCH_ANSWER,
    NO_MATCHING_DOCUMENTS,
    NO_ROOM_ANSWER,
    NO_ROOM_FOR_SOURCES,
    AnswerEvent,
    AnswerRequest,
    AnswerStream,
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    InvalidRequest,
    SourcesEvent,
)
from rag.answer.generation import Generated, Generation
from rag.answer.llm import LLMClient, LLMError
from rag.answer.model_info import ServedModel
from rag.answer.packing import Packer, Prepared
from rag.answer.rerank import CrossEncoderReranker
from rag.answer.retrieval import RelevanceFloor, Retriever
from rag.answer.rewrite import QueryRewriter, SearchQuery
from rag.answer.textnorm import has_visible_text
from rag.answer.workers import configure, cpu, run_search
from rag.documents import Hit
from rag.embedding.protocol import Embedder
from rag.settings import RetrievalMode, Settings
from rag.store.qdrant_store import QdrantStore
from rag.store.search import SearchFilters

T = TypeVar("T")


class RagPipeline:
    """The one owner of both use cases; its components are built here, once."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: QdrantStore,
        llm: LLMClient | None = None,
    ) -> None:
        self.settings, self.llm = settings, llm
        configure(settings.cpu_workers, settings.search_workers)
        self.model = ServedModel(settings.llm, llm, settings.model_dir)
        reranker = (
            CrossEncoderReranker(settings.model_dir, settings.retrieval.rerank_passages_per_parent)
            if settings.retrieval.rerank
            else None
        )
        self.retriever = Retriever(settings.retrieval, embedder, store, reranker)
        self.decomposer = HopDecomposer(settings.retrieval, llm)
        self.floor = RelevanceFloor.of(settings.retrieval)
        self.rewriter = QueryRewriter(settings.conversation, llm)
        self.packer = Packer(settings.llm, settings.conversation, self.model)

    # --- search ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        mode: RetrievalMode | None = None,
        floor: RelevanceFloor | None = None,
        *,
        scope: ReadScope,
    ) -> list[Hit]:
        """Parents ``scope`` may read for ``query`` (``InvalidRequest`` when too long), best
        first; none under the relevance ``floor`` (``rag.answer.retrieval``; the answer
        path's). The scope is inside the store's query (``SearchFilters.within``)."""
        s = self.settings
        self._check_text("query", query)
        k, how = top_k or s.default_top_k, mode or s.retrieval_mode
        with tracing.span(
            "rag.retrieve", rag_top_k=k, rag_mode=how.value, rag_query=tracing.text(query)
        ) as retrieving:
            hits = self.retriever.retrieve(
                query, k, how, SearchFilters.within(filters, scope), floor
            )
            tracing.set_attrs(
                retrieving,
                rag_hits=len(hits),
                rag_parent_tokens=sum(h.tokens for h in hits),
                rag_documents=len({h.document_id for h in hits}),
            )
        return hits

    # --- answer ----------------------------------------------------------------------------
    def answer(self, request: AnswerRequest) -> AnswerStream:
        """The answer use case, as events in the order ``rag.answer.events`` states (in a
        ``rag.answer`` span, its stages children of it, when tracing is on)."""
        if not tracing.enabled():
            return self._answer(request, tracing.INVALID_SPAN)
        return self._traced(request)

    async def _traced(self, request: AnswerRequest) -> AnswerStream:
        root = tracing.start(
            "rag.answer",
            rag_request_id=request.request_id,
            rag_question=tracing.text(request.question),
            rag_question_chars=len(request.question),
            rag_history_messages=len(request.history),
        )
        try:
            async with contextlib.aclosing(self._answer(request, root)) as events:
                async for event in events:
                    if isinstance(event, FinalEvent):
                        tracing.set_attrs(
                            root,
                            rag_sources=len(event.sources),
                            rag_prompt_tokens=event.usage.prompt_tokens,
                            rag_completion_tokens=event.usage.completion_tokens,
                            rag_finish_reason=event.finish_reason,
                            rag_reason=event.reason,
                        )
                    yield event
        except Exception as exc:
            tracing.failed(root, exc)
            raise
        finally:
            root.end()

    async def _answer(self, request: AnswerRequest, root: tracing.Span) -> AnswerStream:
        max_tokens = self._admit(request)
        turns = turns_of(request.history)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with tracing.span("rag.rewrite", parent=root, rag_turns=len(turns)) as rewriting:
            search = await self.rewriter.search_query(
                request.question, turns, self.model.special_tokens, request.request_id
            )
            tracing.set_attrs(
                rewriting, rag_source=search.source, rag_query=tracing.text(search.text)
            )
        if turns:
            timings["rewrite"] = _since(started)
        started = time.perf_counter()
        with tracing.current(root):  # the search's spans (in its thread) are children of root
            hits, search = await self._retrieve(request, search)
        timings["retrieval"] = _since(started)
        if not hits:
            for event in self._unanswered(
                request, max_tokens, timings, search, NO_MATCHING_DOCUMENTS, NO_MATCH_ANSWER
            ):
                yield event
            return
        started = time.perf_counter()
        with tracing.span("rag.pack", parent=root, rag_hits=len(hits)) as packing:
            prepared = await self.packer.pack(
                request.question,
                hits,
                max_tokens=max_tokens,
                max_context_tokens=request.max_context_tokens,
                history=turns,
                instructions=request.instructions,
            )
            budget = prepared.budget
            tracing.set_attrs(
                packing,
                rag_sources=len(prepared.sources),
                rag_truncated=sum(1 for s in prepared.sources if s.truncated),
                rag_prompt_tokens=prepared.prompt_tokens,
                rag_context_tokens=prepared.context_tokens,
                rag_history_tokens=prepared.history.tokens,
                rag_budget_window=budget.window,
                rag_budget_max_tokens=budget.max_tokens,
                rag_budget_headroom=budget.headroom,
                rag_budget_target_fill=budget.target_fill,
            )
        timings["packing"] = _since(started)
        if not prepared.sources:  # the window left no room: the LLM is not asked either
            for event in self._unanswered(
                request, max_tokens, timings, search, NO_ROOM_FOR_SOURCES, NO_ROOM_ANSWER
            ):
                yield event
            return
        generating = tracing.start(
            "rag.generate", parent=root, rag_max_tokens=prepared.budget.max_tokens
        )
        try:
            generation = await Generation.start(  # raises LLMError before anything was announced
                self.llm,
                self.model,
                prepared.messages,
                max_tokens=prepared.budget.max_tokens,
                temperature=request.temperature,
                request_id=request.request_id,
            )
        except BaseException as exc:
            tracing.failed(generating, exc)
            generating.end()
            raise
        try:
            yield SourcesEvent(prepared.sources, prepared.usage(), dict(timings), search)
            try:
                async for text in generation.deltas():
                    yield DeltaEvent(text)
            except LLMError as exc:
                timings["generation"] = round(generation.elapsed(), 4)
                tracing.failed(generating, exc)
                yield ErrorEvent(exc, timings)
                return
        finally:
            await generation.aclose()
            _generated(generating, generation.result())
        answer = generation.result()
        timings["first_token"] = round(answer.first_token_s, 4)
        timings["generation"] = round(answer.seconds, 4)
        with tracing.span("rag.cite", parent=root) as citing:
            check = await cpu(parse_citations, answer.text, prepared.sources, request.question)
            tracing.set_attrs(
                citing,
                rag_citations=len(check.citations),
                rag_invalid=len(check.invalid),
                rag_unsupported=len(check.unsupported),
            )
        yield FinalEvent(
            answer.text,
            check,
            prepared.sources,
            prepared.usage(answer.usage),
            timings,
            finish_reason=answer.finish_reason,
            search=search,
        )

    async def _retrieve(
        self, request: AnswerRequest, search: SearchQuery
    ) -> tuple[list[Hit], SearchQuery]:
        """The answer path's retrieval: the first hop (none under the relevance floor), the
        follow-ups planned from it, then fused; ``search`` gains the follow-ups actually
        searched (a follow-up past the hop budget is not). With the LLM's decomposition on,
        the plan (``HopDecomposer``: the LLM's proposal, or the deterministic follow-ups when
        it fails) is made between two trips to the search pool, and the hop budget counts
        from when it came back; off, first hop and follow-ups are one trip, as ``search``."""
        s = self.settings
        self._check_text("query", search.text)
        k, how = request.top_k or s.default_top_k, request.mode or s.retrieval_mode
        filters = SearchFilters.within(request.filters, request.scope)
        with tracing.span(
            "rag.retrieve", rag_top_k=k, rag_mode=how.value, rag_query=tracing.text(search.text)
        ) as retrieving:
            searched: list[str] = []
            by: Literal["llm", "deterministic"] | None = None
            note: str | None = None
            if self.decomposer.on:
                first = await run_search(
                    self.retriever.first_hop, search.text, k, how, filters, self.floor
                )
                if not first.hits:
                    return [], search
                with tracing.span("rag.decompose") as planning:
                    plan = await self.decomposer.plan(
                        search.text, first.hits, self.model.special_tokens, request.request_id
                    )
                    tracing.set_attrs(
                        planning, rag_source=plan.source, rag_queries=len(plan.follow_ups)
                    )
                by, note = plan.source, plan.note
                hits = await run_search(
                    functools.partial(self.retriever.follow, searched=searched),
                    first,
                    search.text,
                    k,
                    how,
                    filters,
                    plan.follow_ups,
                    True,  # the budget counts from the proposal, which had its own timeout
                )
            else:
                hits = await run_search(  # first hop and follow-ups: one trip to the pool
                    functools.partial(self.retriever.retrieve, searched=searched),
                    search.text,
                    k,
                    how,
                    filters,
                    self.floor,
                )
                if self.retriever.hops.on:
                    by, note = "deterministic", PlanNote.off
            if by is not None:
                search = dataclasses.replace(
                    search, follow_ups=tuple(searched), follow_ups_by=by, follow_ups_note=note
                )
            tracing.set_attrs(
                retrieving,
                rag_hits=len(hits),
                rag_parent_tokens=sum(h.tokens for h in hits),
                rag_documents=len({h.document_id for h in hits}),
            )
        return hits, search

    def _unanswered(
        self,
        request: AnswerRequest,
        max_tokens: int,
        timings: dict[str, float],
        search: SearchQuery,
        reason: str,
        text: str,
    ) -> list[AnswerEvent]:
        """No sources and a final answer with ``reason``, without asking the LLM (with no
        sources it would answer from its own memory)."""
        timings.setdefault("packing", 0.0)
        empty = Prepared.nothing(
            request.question, self.packer.budget(max_tokens, request.max_context_tokens)
        )
        usage = empty.usage()
        return [
            SourcesEvent([], usage, timings, search),
            FinalEvent(
                text,
                CitationCheck(),
                [],
                usage,
                timings,
                finish_reason=None,
                search=search,
                reason=reason,
            ),
        ]

    # --- what the settings allow -----------------------------------------------------------
    def _admit(self, request: AnswerRequest) -> int:
        """The request's ``max_tokens``, or ``InvalidRequest`` when the settings refuse it."""
        s = self.settings
        self._check_text("question", request.question)
        if not has_visible_text(request.question):  # one rule for every route
            raise InvalidRequest("question: must contain visible text")
        # Bounded before any counting or escaping: a history's cost grows with its size.
        earlier = sum(1 for m in request.history if m.role == "user")
        if earlier > s.max_history_turns:
            raise InvalidRequest(
                f"history: at most {s.max_history_turns} earlier turns (got {earlier})"
            )
        chars = sum(len(m.content) for m in request.history)
        if chars > s.max_history_chars:
            raise InvalidRequest(f"history: at most {s.max_history_chars} characters (got {chars})")
        max_tokens = request.max_tokens or s.default_max_tokens
        if max_tokens > s.max_tokens_limit:
            raise InvalidRequest(f"max_tokens {max_tokens} exceeds the limit {s.max_tokens_limit}")
        return max_tokens

    def _check_text(self, name: str, text: str) -> None:
        limit = self.settings.max_question_chars
        if len(text) > limit:
            raise InvalidRequest(f"{name}: at most {limit} characters (got {len(text)})")


def _generated(span: tracing.Span, answer: Generated) -> None:
    """End the generate span with time to first token, the server's counts, the finish."""
    tracing.set_attrs(
        span,
        rag_first_token_s=round(answer.first_token_s, 4),
        rag_seconds=round(answer.seconds, 4),
        rag_completion_tokens=answer.usage.get("completion_tokens"),
        rag_prompt_tokens_server=answer.usage.get("prompt_tokens"),
        rag_chars=len(answer.text),
        rag_finish_reason=answer.finish_reason,
    )
    span.end()


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


async def run_sync(func: Callable[..., T], *args: Any) -> T:
    """Run other blocking work (the routes' store and job calls) off the event loop."""
    return await asyncio.to_thread(func, *args)
