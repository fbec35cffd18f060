"""Adapts the pipeline's use cases to HTTP: request models in, response models out.

Search returns ``SearchResponse``. The answer use case (``RagPipeline.answer``) yields typed
events; here they become a ``QueryResponse`` or Server-Sent Events (``sources``:
``SourcesEventOut``, ``delta``: ``DeltaEventOut``, ``final``: ``QueryResponse``, ``error``:
the error body, then ``done``). Everything that decides what an answer is lives in the
pipeline; this module only chooses status codes (failures before the first event, mapped
in ``api.errors``), frames events, and stops generation when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Sequence, Set
from dataclasses import asdict
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import Services
from api.errors import APIError, llm_error_body
from api.headers import answer_headers
from api.native.protocol import (
    CitationOut,
    DeltaEventOut,
    Filters,
    PassageOut,
    QueryRequest,
    QueryResponse,
    Searched,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SourceOut,
    SourcesEventOut,
    UsageOut,
)
from rag.access import ReadScope
from rag.answer import events as ev
from rag.answer.budget import Source
from rag.answer.citations import Citation
from rag.answer.conversation import Message
from rag.answer.rewrite import SearchQuery
from rag.answer.workers import run_search
from rag.documents import Hit
from rag.store.search import SearchFilters


def collections_of(filters: Filters | None) -> list[str]:
    """The collections a request asked for (``collection`` and ``collections``)."""
    if filters is None:
        return []
    wanted = [*filters.collections, *([filters.collection] if filters.collection else [])]
    return list(dict.fromkeys(wanted))


def to_filters(filters: Filters | None) -> SearchFilters | None:
    if filters is None:
        return None
    return SearchFilters(
        document_ids=filters.document_ids,
        folders=filters.folders,
        file_types=filters.file_types,
        collections=collections_of(filters),
    )


def passages_out(hit: Hit, include: Sequence[str]) -> list[PassageOut]:
    if "passages" not in include and "passage_text" not in include:
        return []
    text = "passage_text" in include
    return [
        PassageOut(
            start=p.start, end=p.end, score=p.score, text=hit.passage_text(p) if text else None
        )
        for p in hit.passages
    ]


def hit_out(hit: Hit, include: Sequence[str] = ("snippet", "passages")) -> SearchResult:
    return SearchResult(
        parent_id=hit.parent_id,
        document_id=hit.document_id,
        source=hit.display_name,
        title=hit.title,
        file_type=hit.file_type,
        pages=hit.pages,
        heading=hit.heading,
        text=hit.text if "parent_text" in include else None,
        snippet=hit.passage_text(hit.passages[0])
        if "snippet" in include and hit.passages
        else None,
        start=hit.start,
        end=hit.end,
        tokens=hit.tokens,
        score=hit.score,
        passages=passages_out(hit, include),
        hop=hit.hop,
        found_by=hit.found_by or None,
    )


async def search(services: Services, body: SearchRequest, scope: ReadScope) -> SearchResponse:
    started = time.perf_counter()
    hits = await run_search(
        functools.partial(services.pipeline.search, scope=scope),
        body.query,
        body.top_k,
        to_filters(body.filters),
        body.mode,
    )
    return SearchResponse(
        results=[hit_out(h, body.include) for h in hits],
        timings={"retrieval": round(time.perf_counter() - started, 4)},
    )


def source_out(
    source: Source,
    include: Sequence[str],
    cited: Set[int] = frozenset(),
    attributed: Set[int] = frozenset(),
) -> SourceOut:
    hit = source.hit
    return SourceOut(
        n=source.n,
        document_id=hit.document_id,
        parent_id=hit.parent_id,
        source=hit.display_name,
        title=hit.title,
        file_type=hit.file_type,
        pages=hit.pages,
        text=source.text,
        start=hit.start,
        truncated=source.truncated,
        rank=source.rank,
        score=hit.score,
        parent_text=hit.text if source.truncated and "parent_text" in include else None,
        cited=source.n in cited,
        attributed=source.n in attributed,
        passages=passages_out(hit, include),
        hop=hit.hop,
        found_by=hit.found_by or None,
    )


def citation_out(c: Citation) -> CitationOut:
    hit = c.source.hit
    return CitationOut(
        n=c.n,
        document_id=hit.document_id,
        parent_id=hit.parent_id,
        source=hit.display_name,
        title=hit.title,
        pages=hit.pages,
        quote=c.quote,
        quote_start=c.quote_start,
        quote_end=c.quote_end,
        kind=c.kind,
    )


def usage_out(usage: ev.Usage) -> UsageOut:
    return UsageOut(**asdict(usage))


def final_out(services: Services, final: ev.FinalEvent, include: Sequence[str]) -> QueryResponse:
    citations = final.check.citations
    cited = {c.n for c in citations if c.kind == "model"}
    attributed = {c.n for c in citations if c.kind == "attributed"}
    return QueryResponse(
        answer=final.answer,
        citations=[citation_out(c) for c in citations],
        invalid_citations=final.check.invalid,
        unsupported_citations=final.check.unsupported,
        sources=[source_out(s, include, cited, attributed) for s in final.sources],
        usage=usage_out(final.usage),
        timings=final.timings,
        model=services.settings.llm_model,
        finish_reason=final.finish_reason,
        reason=final.reason,
        **searched(final.search),
    )


def _record(request: Request, final: ev.FinalEvent) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is None or final.reason is not None:
        return
    for stage in ("retrieval", "packing", "generation"):
        if stage in final.timings:
            metrics.stage.labels(stage).observe(final.timings[stage])
    usage = final.usage
    metrics.tokens.labels("in").inc(usage.prompt_tokens)
    metrics.tokens.labels("out").inc(usage.completion_tokens)
    if usage.context_window:
        metrics.context_fill.observe(usage.prompt_tokens / usage.context_window)


def answer_request(
    body: QueryRequest, request_id: str | None, scope: ReadScope
) -> ev.AnswerRequest:
    return ev.AnswerRequest(
        question=body.question,
        scope=scope,
        top_k=body.top_k,
        filters=to_filters(body.filters),
        mode=body.mode,
        max_context_tokens=body.max_context_tokens,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        request_id=request_id,
        history=tuple(Message(m.role, m.content) for m in body.history),
    )


async def query(
    services: Services,
    body: QueryRequest,
    request: Request,
    request_id: str | None,
    response: Response,
    scope: ReadScope,
) -> QueryResponse | StreamingResponse:
    """The answer, whole or streamed; either way with the sources in its headers (set on
    ``response``, or on the stream; ``api.headers``). Every search runs inside ``scope``."""
    events = services.pipeline.answer(answer_request(body, request_id, scope))
    # The first event comes once the LLM accepted the request (or nothing matched): failures
    # before it are raised here and become proper status codes, not a 200 stream.
    first = await anext(events)
    headers = sources_headers(first, request_id)
    if body.stream:
        return StreamingResponse(
            _stream(services, first, events, request, body.include),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **headers},
        )
    response.headers.update(headers)
    return await collect_final(services, first, events, request, body.include)


def sources_headers(first: ev.AnswerEvent, request_id: str | None) -> dict[str, str]:
    """The headers naming the sources of the pipeline's first event (``SourcesEvent``)."""
    return answer_headers(first.sources if isinstance(first, ev.SourcesEvent) else [], request_id)


async def collect_final(
    services: Services,
    first: ev.AnswerEvent,
    events: ev.AnswerStream,
    request: Request,
    include: Sequence[str],
) -> QueryResponse:
    async def drain() -> ev.FinalEvent:
        event = first
        while not isinstance(event, ev.FinalEvent):
            if isinstance(event, ev.ErrorEvent):
                raise event.error
            event = await anext(events)
        return event

    task = asyncio.ensure_future(drain())
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if not done and await request.is_disconnected():
                # The client left: stop generating. Cancel the drain first and let it
                # unwind (it is inside the generator), then close the generator, which
                # closes the vLLM stream so the server aborts the request.
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                await events.aclose()
                raise APIError(499, "client_closed", "client disconnected")
        final = task.result()
        _record(request, final)
        return final_out(services, final, include)
    finally:
        if not task.done():
            task.cancel()


def searched(search: SearchQuery) -> dict[str, Any]:
    """``Searched``'s fields of an answer, its first event or chunk."""
    return Searched(
        search_query=search.text,
        search_query_source=search.source,
        search_query_note=search.note,
        follow_up_queries=list(search.follow_ups),
        follow_ups_by=search.follow_ups_by,
        follow_ups_note=search.follow_ups_note,
    ).model_dump()


def sources_out(
    services: Services, event: ev.SourcesEvent, include: Sequence[str]
) -> SourcesEventOut:
    return SourcesEventOut(
        sources=[source_out(s, include) for s in event.sources],
        usage=usage_out(event.usage),
        timings=event.timings,
        model=services.settings.llm_model,
        **searched(event.search),
    )


def _sse(event: str, data: BaseModel | dict[str, Any]) -> bytes:
    body = data.model_dump() if isinstance(data, BaseModel) else data
    return f"event: {event}\ndata: {json.dumps(body)}\n\n".encode()


async def _stream(
    services: Services,
    first: ev.AnswerEvent,
    events: ev.AnswerStream,
    request: Request,
    include: Sequence[str],
) -> AsyncIterator[bytes]:
    event: ev.AnswerEvent | None = first
    try:
        while event is not None:
            if isinstance(event, ev.SourcesEvent):
                yield _sse("sources", sources_out(services, event, include))
            elif isinstance(event, ev.DeltaEvent):
                yield _sse("delta", DeltaEventOut(text=event.text))
            elif isinstance(event, ev.ErrorEvent):
                yield _sse("error", llm_error_body(event.error))
                break
            else:
                _record(request, event)
                yield _sse("final", final_out(services, event, include))
                break
            event = await anext(events, None)
    finally:
        await events.aclose()  # also runs when the client disconnects (cancellation)
    yield b"event: done\ndata: [DONE]\n\n"
