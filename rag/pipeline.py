"""The two use cases, search and answer, composed from the components.

``search`` is synchronous (embedding and Qdrant are CPU/IO work the API runs in a thread).
``prepare`` packs the context and proves the budget invariant with an exact count before
anything is sent; ``stream_answer`` then streams the model's answer and finishes with
citations and usage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rag.budget import Budget, BudgetError, Source, choose_sources, document_order
from rag.documents import Hit
from rag.embedding import Embedder
from rag.generation import LLMClient, LLMError
from rag.prompting import build_messages, format_source, parse_citations
from rag.settings import RetrievalMode, Settings
from rag.sparse import BM25Encoder
from rag.store import QdrantStore, SearchFilters
from rag.tokens import count_llama31_chat, count_tokens, llama3_encoding

log = logging.getLogger(__name__)

ChatCounter = Callable[[list[dict[str, str]]], Awaitable[int]]


@dataclass
class Prepared:
    question: str
    sources: list[Source]
    messages: list[dict[str, str]]
    budget: Budget
    prompt_tokens: int
    context_tokens: int
    timings: dict[str, float] = field(default_factory=dict)

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "context_tokens": self.context_tokens,
                "context_window": self.budget.window, "headroom_tokens": self.budget.headroom,
                "max_tokens": self.budget.max_tokens, "margin_tokens": self.budget.margin}


class RagPipeline:
    def __init__(self, settings: Settings, embedder: Embedder, store: QdrantStore,
                 llm: LLMClient | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.llm = llm
        self.sparse = BM25Encoder()
        self.served_window: int | None = None
        # Special tokens to neutralise in documents: the serving tokenizer's when it says
        # (refresh_window), else Llama 3's when counting with it.
        self.special_tokens: tuple[str, ...] = (
            tuple(sorted(llama3_encoding().special_tokens_set)) if self.uses_llama3_tokenizer()
            else ())
        self.reranker = None
        if settings.rerank:
            from rag.rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker(settings)

    # --- search ----------------------------------------------------------------------------
    def search(self, query: str, top_k: int, filters: SearchFilters | None = None,
               mode: RetrievalMode | None = None) -> list[Hit]:
        mode = mode or self.settings.retrieval_mode
        dense = (self.embedder.embed_queries([query])[0].tolist()
                 if mode is not RetrievalMode.sparse else None)
        sparse = self.sparse.encode_query(query) if mode is not RetrievalMode.dense else None
        hits = self.store.search(dense, sparse, limit=top_k, filters=filters, mode=mode)
        return self.reranker.rerank(query, hits) if self.reranker is not None else hits

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
                base = (llama3_encoding().special_tokens_set if self.uses_llama3_tokenizer()
                        else set())
                self.special_tokens = tuple(sorted(set(specials) | base))
            elif not self.special_tokens:
                log.warning("the LLM server does not list its special tokens (start vLLM with "
                            "--enable-tokenizer-info-endpoint); only <|...|> markers are "
                            "escaped in documents")
        return served

    # --- packing ---------------------------------------------------------------------------
    def without_sources(self, question: str, *, max_tokens: int,
                        max_context_tokens: int | None = None) -> Prepared:
        """Nothing matched: no prompt, no LLM call (it would answer from its own memory)."""
        s = self.settings
        target = min(s.target_fill_tokens, max_context_tokens or s.target_fill_tokens)
        budget = Budget.for_request(s.context_window, self.served_window, max_tokens,
                                    s.margin_ratio, target)
        return Prepared(question, [], [], budget, 0, 0)

    async def prepare(self, question: str, hits: list[Hit], *, max_tokens: int,
                      max_context_tokens: int | None = None,
                      counter: ChatCounter | None = None) -> Prepared:
        count = counter or self.count_prompt
        s = self.settings
        target = min(s.target_fill_tokens, max_context_tokens or s.target_fill_tokens)
        if self.served_window is None:
            await self.refresh_window()
        budget = Budget.for_request(s.context_window, self.served_window, max_tokens,
                                    s.margin_ratio, target)
        specials = self.special_tokens
        base_messages = build_messages(question, [], specials)
        base = await count(base_messages)
        numbers = {"question_tokens": count_tokens(question), "prompt_tokens_without_sources":
                   base, "max_tokens": max_tokens, "margin_tokens": budget.margin,
                   "context_window": budget.window, "prompt_limit": budget.prompt_limit}
        if budget.prompt_limit <= 0:
            raise BudgetError(f"max_tokens {max_tokens} plus the safety margin "
                              f"{budget.margin} leave no room in the {budget.window}-token window",
                              numbers)
        if base > budget.prompt_limit:
            raise BudgetError(f"the question alone needs {base} prompt tokens but at most "
                              f"{budget.prompt_limit} fit (window {budget.window} minus "
                              f"max_tokens {max_tokens} minus margin {budget.margin})", numbers)
        available = min(budget.prompt_limit - base, budget.target_fill)

        def cost(hit: Hit, text: str) -> int:
            label = count_tokens(format_source(0, hit.title, hit.source, hit.pages, "",
                                               specials)) + 2
            if text is hit.text:  # counted at ingest; the exact check below guards the rest
                return label + hit.tokens
            return label + count_tokens(text)

        scale = 1.0
        for _ in range(6):
            sources = document_order(choose_sources(hits, available, cost, scale))
            messages = build_messages(question, sources, specials)
            exact = await count(messages)
            if exact <= budget.prompt_limit:
                return Prepared(question, sources, messages, budget, exact, exact - base)
            # The server's tokenizer counts more than our estimate: learn its ratio, repack.
            estimated = sum(cost(src.hit, src.text) for src in sources) or 1
            scale *= max(1.02, (exact - base) / estimated * 1.02)
        raise BudgetError("could not pack sources within the prompt limit", numbers)

    # --- answering -------------------------------------------------------------------------
    async def stream_answer(self, prepared: Prepared, *, temperature: float,
                            request_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Events: {"type": "delta", "text"} ..., then {"type": "final", ...}."""
        if self.llm is None:
            raise RuntimeError("no LLM configured")
        started = time.monotonic()
        parts: list[str] = []
        usage: dict[str, int] = {}
        finish = "stop"
        first_token: float | None = None
        stream = self.llm.stream_chat(
            prepared.messages, max_tokens=prepared.budget.max_tokens, temperature=temperature,
            request_id=request_id,
        )
        try:
            async for event in self._rediscover_on_failure(stream):
                if event.delta:
                    if first_token is None:
                        first_token = time.monotonic() - started
                    parts.append(event.delta)
                    yield {"type": "delta", "text": event.delta}
                if event.finish_reason:
                    usage = event.usage
                    finish = event.finish_reason
        finally:
            await stream.aclose()
        answer = "".join(parts).strip()
        check = parse_citations(answer, prepared.sources)
        timings = dict(prepared.timings)
        timings["first_token"] = round(first_token if first_token is not None
                                       else time.monotonic() - started, 4)
        timings["generation"] = round(time.monotonic() - started, 4)
        yield {"type": "final", "answer": answer, "citations": check.citations,
               "invalid_citations": check.invalid,
               "unsupported_citations": check.unsupported, "finish_reason": finish,
               "usage": {**prepared.usage(),
                         "prompt_tokens_server": usage.get("prompt_tokens"),
                         "completion_tokens": usage.get("completion_tokens", 0)},
               "timings": timings}


    async def _rediscover_on_failure(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A failing server may have been restarted with another window: forget ours."""
        try:
            async for event in stream:
                yield event
        except LLMError:
            self.served_window = None
            raise


async def run_sync(func: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work (embedding, Qdrant local mode) off the event loop."""
    return await asyncio.to_thread(func, *args)
