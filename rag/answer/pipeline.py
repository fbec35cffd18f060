"""The two use cases, search and answer, composed from the components.

``search`` is synchronous (embedding and Qdrant are CPU/IO work the API runs in a thread).
``answer`` is the whole answer use case as one stream of typed events (``rag.answer.events``):
search, the budget and packing (``rag.answer.budget.pack``, proved with an exact count before
anything is sent), generation, citations, usage and timings. Adapters (HTTP, benchmarks)
only translate the events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rag.answer.budget import Budget, ChatCounter, Messages, Source, fit_history, pack
from rag.answer.conversation import HistoryFit, Turn, flatten, turns_of
from rag.answer.events import (
    NO_MATCH_ANSWER,
    NO_MATCHING_DOCUMENTS,
    AnswerEvent,
    AnswerRequest,
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    InvalidRequest,
    SourcesEvent,
    Usage,
)
from rag.answer.llm import LLMClient, LLMError, StreamEvent
from rag.answer.prompting import CitationCheck, build_messages, format_source, parse_citations
from rag.answer.rewrite import QueryRewriter, SearchQuery
from rag.documents import Hit
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder
from rag.settings import RetrievalMode, Settings
from rag.store.qdrant_store import QdrantStore, SearchFilters
from rag.text.tokens import count_llama31_chat, count_tokens, llama3_encoding, use_model_dir

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A packed prompt, ready for the LLM."""

    question: str
    sources: list[Source]
    messages: Messages
    budget: Budget
    prompt_tokens: int
    context_tokens: int
    history: HistoryFit = HistoryFit((), 0, 0)

    def usage(self, server: dict[str, int] | None = None) -> Usage:
        server = server or {}
        return Usage(
            prompt_tokens=self.prompt_tokens,
            context_tokens=self.context_tokens,
            context_window=self.budget.window,
            headroom_tokens=self.budget.headroom,
            max_tokens=self.budget.max_tokens,
            margin_tokens=self.budget.margin,
            prompt_tokens_server=server.get("prompt_tokens"),
            completion_tokens=server.get("completion_tokens", 0),
            history_tokens=self.history.tokens,
            history_turns_kept=len(self.history.kept),
            history_turns_dropped=self.history.dropped,
        )


class RagPipeline:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: QdrantStore,
        llm: LLMClient | None = None,
    ) -> None:
        self.settings = settings
        use_model_dir(settings.model_dir)
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self.sparse = BM25Encoder()
        self.rewriter = QueryRewriter(settings, llm)
        self.served_window: int | None = None
        # Special tokens to neutralise in documents: the serving tokenizer's when it says
        # (refresh_window), else Llama 3's when counting with it.
        self.special_tokens: tuple[str, ...] = (
            tuple(sorted(llama3_encoding().special_tokens_set))
            if self.uses_llama3_tokenizer()
            else ()
        )
        self.reranker = None
        if settings.rerank:
            from rag.answer.rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker(settings)

    # --- search ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        mode: RetrievalMode | None = None,
    ) -> list[Hit]:
        self.check_text("query", query)
        top_k = top_k or self.settings.default_top_k
        mode = mode or self.settings.retrieval_mode
        dense = (
            self.embedder.embed_queries([query])[0].tolist()
            if mode is not RetrievalMode.sparse
            else None
        )
        sparse = self.sparse.encode_query(query) if mode is not RetrievalMode.dense else None
        if self.reranker is None:
            return self.store.search(dense, sparse, limit=top_k, filters=filters, mode=mode)
        pool = max(top_k, self.settings.rerank_candidates)  # the model chooses among more
        hits = self.store.search(dense, sparse, limit=pool, filters=filters, mode=mode)
        return self.reranker.rerank(query, hits, keep=top_k)

    def check_text(self, name: str, text: str) -> None:
        limit = self.settings.max_question_chars
        if len(text) > limit:
            raise InvalidRequest(f"{name}: at most {limit} characters (got {len(text)})")

    # --- counting --------------------------------------------------------------------------
    def uses_llama3_tokenizer(self) -> bool:
        choice = self.settings.llm_tokenizer
        if choice == "auto":
            return "llama-3" in self.settings.llm_model.lower().replace("llama3", "llama-3")
        return choice == "llama3"

    async def count_prompt(self, messages: list[dict[str, str]]) -> int:
        if self.uses_llama3_tokenizer() or self.llm is None:
            return count_llama31_chat(messages)
        return await self.llm.count_chat_tokens(messages)

    async def refresh_window(self) -> int | None:
        """Ask the server for ``max_model_len`` (and its tokenizer's special tokens) now;
        keeps the last known values on failure."""
        served = await self.llm.served_window() if self.llm is not None else None
        if served:
            self.served_window = served
            specials = await self.llm.special_tokens()
            if specials is not None:
                base = (
                    llama3_encoding().special_tokens_set if self.uses_llama3_tokenizer() else set()
                )
                self.special_tokens = tuple(sorted(set(specials) | base))
            elif not self.special_tokens:
                log.warning(
                    "the LLM server does not list its special tokens (start vLLM with "
                    "--enable-tokenizer-info-endpoint); only <|...|> markers are "
                    "escaped in documents"
                )
        return served

    # --- packing ---------------------------------------------------------------------------
    def budget(self, max_tokens: int, max_context_tokens: int | None = None) -> Budget:
        s = self.settings
        target = min(s.target_fill_tokens, max_context_tokens or s.target_fill_tokens)
        return Budget.for_request(
            s.context_window, self.served_window, max_tokens, s.margin_ratio, target
        )

    async def prepare(
        self,
        question: str,
        hits: list[Hit],
        *,
        max_tokens: int,
        max_context_tokens: int | None = None,
        counter: ChatCounter | None = None,
        history: Sequence[Turn] = (),
        instructions: str | None = None,
    ) -> Prepared:
        """Pack ``hits`` for ``question`` within the budget (``rag.answer.budget.pack``), after the
        newest whole turns of ``history`` that fit its share of the prompt."""
        if self.served_window is None:
            await self.refresh_window()
        budget = self.budget(max_tokens, max_context_tokens)
        specials = self.special_tokens
        count = counter or self.count_prompt
        fit, base = HistoryFit((), 0, 0), None
        if history:
            alone = await count(build_messages(question, [], specials, instructions=instructions))
            allowance = min(
                int(self.settings.history_share * budget.prompt_limit), budget.prompt_limit - alone
            )

            async def history_tokens(kept: Sequence[Turn]) -> int:
                return (
                    await count(build_messages(question, [], specials, flatten(kept), instructions))
                    - alone
                )

            fit = await fit_history(history, max(allowance, 0), history_tokens)
            base = alone + fit.tokens  # exact: the prompt without sources, counted above
        earlier = flatten(fit.kept)
        packed = await pack(
            hits,
            budget,
            count=count,
            render=lambda sources: build_messages(
                question, sources, specials, earlier, instructions
            ),
            label_tokens=lambda hit: (
                count_tokens(format_source(0, hit.title, hit.source, hit.pages, "", specials)) + 2
            ),
            question_tokens=count_tokens(question),
            base=base,
        )
        return Prepared(
            question,
            packed.sources,
            packed.messages,
            budget,
            packed.prompt_tokens,
            packed.context_tokens,
            fit,
        )

    # --- answering -------------------------------------------------------------------------
    async def answer(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """The answer use case, as events (see ``rag.answer.events``)."""
        s = self.settings
        self.check_text("question", request.question)
        max_tokens = request.max_tokens or s.default_max_tokens
        if max_tokens > s.max_tokens_limit:
            raise InvalidRequest(f"max_tokens {max_tokens} exceeds the limit {s.max_tokens_limit}")
        turns = turns_of(request.history)
        t0 = time.perf_counter()
        search = await self.rewriter.search_query(
            request.question, turns, self.special_tokens, request.request_id
        )
        timings = {"rewrite": round(time.perf_counter() - t0, 4)} if turns else {}
        t1 = time.perf_counter()
        hits = await run_sync(
            self.search, search.text, request.top_k, request.filters, request.mode
        )
        t2 = time.perf_counter()
        timings["retrieval"] = round(t2 - t1, 4)
        if not hits:
            empty = Prepared(
                request.question, [], [], self.budget(max_tokens, request.max_context_tokens), 0, 0
            )
            timings["packing"] = 0.0
            yield SourcesEvent([], empty.usage(), timings, search)
            yield FinalEvent(
                NO_MATCH_ANSWER,
                CitationCheck(),
                [],
                empty.usage(),
                timings,
                finish_reason=None,
                search=search,
                reason=NO_MATCHING_DOCUMENTS,
            )
            return
        prepared = await self.prepare(
            request.question,
            hits,
            max_tokens=max_tokens,
            max_context_tokens=request.max_context_tokens,
            history=turns,
            instructions=request.instructions,
        )
        timings["packing"] = round(time.perf_counter() - t2, 4)
        async for event in self.generate(
            prepared,
            temperature=request.temperature,
            request_id=request.request_id,
            timings=timings,
            search=search,
        ):
            yield event

    async def generate(
        self,
        prepared: Prepared,
        *,
        temperature: float,
        request_id: str | None = None,
        timings: dict[str, float] | None = None,
        search: SearchQuery | None = None,
    ) -> AsyncIterator[AnswerEvent]:
        """Stream the LLM's answer to a packed prompt; the sources are announced once the
        LLM has accepted the request, so "LLM down" is raised, not streamed."""
        if self.llm is None:
            raise RuntimeError("no LLM configured")
        timings = dict(timings or {})
        search = search or SearchQuery(prepared.question, "question")
        started = time.monotonic()
        stream = self._rediscover_on_failure(
            self.llm.stream_chat(
                prepared.messages,
                max_tokens=prepared.budget.max_tokens,
                temperature=temperature,
                request_id=request_id,
            )
        )
        try:
            first = await anext(stream)  # raises LLMError before anything was announced
            yield SourcesEvent(prepared.sources, prepared.usage(), dict(timings), search)
            parts: list[str] = []
            server: dict[str, int] = {}
            finish = "stop"
            first_token: float | None = None
            event: StreamEvent | None = first
            try:
                while event is not None:
                    if event.delta:
                        if first_token is None:
                            first_token = time.monotonic() - started
                        parts.append(event.delta)
                        yield DeltaEvent(event.delta)
                    if event.finish_reason:
                        server, finish = event.usage, event.finish_reason
                    event = await anext(stream, None)
            except LLMError as exc:
                timings["generation"] = round(time.monotonic() - started, 4)
                yield ErrorEvent(exc, timings)
                return
        finally:
            await stream.aclose()
        answer = "".join(parts).strip()
        timings["first_token"] = round(
            first_token if first_token is not None else time.monotonic() - started, 4
        )
        timings["generation"] = round(time.monotonic() - started, 4)
        yield FinalEvent(
            answer,
            parse_citations(answer, prepared.sources),
            prepared.sources,
            prepared.usage(server),
            timings,
            finish_reason=finish,
            search=search,
        )

    async def _rediscover_on_failure(
        self, stream: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        """A failing server may have been restarted with another window: forget ours."""
        try:
            async for event in stream:
                yield event
        except LLMError:
            self.served_window = None
            raise
        finally:
            await stream.aclose()


async def run_sync(func: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work (embedding, Qdrant local mode) off the event loop."""
    return await asyncio.to_thread(func, *args)
