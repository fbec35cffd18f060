"""The answer use case's types: the request it takes and the events it yields.

``RagPipeline.answer`` owns the whole use case (rewrite, retrieval, packing, generation,
citations, timings); callers (the HTTP API, benchmarks) only translate these events.

Event order, the invariant every adapter relies on: one ``SourcesEvent``, then zero or more
``DeltaEvent``, then exactly one ``FinalEvent`` or ``ErrorEvent``, and nothing after it.

1. ``SourcesEvent``: the packed sources, once the LLM has accepted the request (or at once
   when nothing matched). Failures before it are raised, not yielded (``InvalidRequest``,
   ``BudgetError``, ``LLMError``), so an adapter can still refuse the request.
2. ``DeltaEvent`` ...: answer text as it streams (none when nothing matched).
3. ``FinalEvent``: the whole answer, checked citations, usage and timings; or
   ``ErrorEvent`` when the LLM failed after the sources were announced.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from rag.access.scope import ReadScope
from rag.answer.budget import Source
from rag.answer.citations import CitationCheck
from rag.answer.conversation import Message
from rag.answer.llm import LLMError
from rag.answer.rewrite import SearchQuery
from rag.settings import RetrievalMode
from rag.store.search import SearchFilters

#: ``FinalEvent.reason`` when nothing matched: the LLM was not asked (it would answer from
#: its own memory).
NO_MATCHING_DOCUMENTS = "no_matching_documents"
NO_MATCH_ANSWER = "No documents matched the question, so there is nothing to answer from."
#: ``FinalEvent.reason`` when sources matched but the budget (``max_context_tokens``, the
#: window) left room for none of them: the LLM is not asked either.
NO_ROOM_FOR_SOURCES = "no_room_for_sources"
NO_ROOM_ANSWER = (
    "Documents matched, but the context budget left no room for any of them, "
    "so there is nothing to answer from."
)


class InvalidRequest(ValueError):
    """A request the settings do not allow (too long, too many tokens asked for)."""


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    #: what the asking principal may read (``rag.access.scope``): every search of the
    #: request, the rewritten follow-up's included, runs inside it
    scope: ReadScope
    top_k: int | None = None
    filters: SearchFilters | None = None
    mode: RetrievalMode | None = None
    max_context_tokens: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.0
    request_id: str | None = None
    history: tuple[Message, ...] = ()  # earlier turns, oldest first (the client keeps them)
    instructions: str | None = None  # a client's own system message, kept after ours


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int  # our exact count of the chat-templated prompt
    context_tokens: int  # the part of it that sources take
    context_window: int
    headroom_tokens: int
    max_tokens: int
    margin_tokens: int
    prompt_tokens_server: int | None = None  # what the LLM server reported
    completion_tokens: int = 0
    history_tokens: int = 0  # what the kept earlier turns add to the prompt, exactly
    history_turns_kept: int = 0
    history_turns_dropped: int = 0  # the oldest, over the history share of the prompt


@dataclass
class SourcesEvent:
    sources: list[Source]
    usage: Usage
    timings: dict[str, float]
    search: SearchQuery


@dataclass
class DeltaEvent:
    text: str


@dataclass
class FinalEvent:
    answer: str
    check: CitationCheck
    sources: list[Source]
    usage: Usage
    timings: dict[str, float]
    finish_reason: str | None
    search: SearchQuery
    reason: str | None = None  # NO_MATCHING_DOCUMENTS when the LLM was not asked


@dataclass
class ErrorEvent:
    error: LLMError
    timings: dict[str, float] = field(default_factory=dict)


AnswerEvent = SourcesEvent | DeltaEvent | FinalEvent | ErrorEvent
#: What ``RagPipeline.answer`` returns; closing it (``aclose``) stops the generation.
AnswerStream = AsyncGenerator[AnswerEvent, None]
