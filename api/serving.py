"""Turns pipeline results into API responses: search results, answers, and SSE streams.

Errors that happen before the first byte (retrieval, packing, the LLM refusing or being
down) become proper HTTP statuses; the stream is only opened once the LLM has accepted the
request. Errors after that arrive as an ``error`` event, since the status line is sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import Services
from api.errors import APIError, llm_error_body
from api.protocol import Filters, QueryRequest, SearchRequest
from rag.budget import Source
from rag.documents import Hit
from rag.generation import LLMError
from rag.pipeline import Prepared, run_sync
from rag.prompting import Citation
from rag.settings import Settings
from rag.store import SearchFilters


def to_filters(filters: Filters | None) -> SearchFilters | None:
    if filters is None:
        return None
    return SearchFilters(document_ids=filters.document_ids, folders=filters.folders,
                         file_types=filters.file_types)


def passages_out(hit: Hit) -> list[dict[str, Any]]:
    return [{"start": p["start"], "end": p["end"], "score": p["score"],
             "text": hit.text[p["start"] - hit.start:p["end"] - hit.start]}
            for p in hit.passages]


def hit_out(hit: Hit) -> dict[str, Any]:
    return {"parent_id": hit.parent_id, "document_id": hit.document_id, "source": hit.source,
            "title": hit.title, "file_type": hit.file_type, "pages": hit.pages,
            "heading": hit.heading, "text": hit.text, "start": hit.start, "end": hit.end,
            "tokens": hit.tokens, "score": hit.score, "passages": passages_out(hit)}


def _check_length(settings: Settings, field: str, text: str) -> None:
    if len(text) > settings.max_question_chars:
        raise APIError(422, "invalid_request",
                       f"{field}: at most {settings.max_question_chars} characters "
                       f"(got {len(text)})")


async def search(services: Services, body: SearchRequest) -> dict[str, Any]:
    _check_length(services.settings, "query", body.query)
    started = time.perf_counter()
    top_k = body.top_k or services.settings.default_top_k
    hits = await run_sync(services.pipeline.search, body.query, top_k, to_filters(body.filters),
                          body.mode)
    return {"results": [hit_out(h) for h in hits],
            "timings": {"retrieval": round(time.perf_counter() - started, 4)}}


def _check_max_tokens(settings: Settings, max_tokens: int) -> None:
    if max_tokens > settings.max_tokens_limit:
        raise APIError(422, "invalid_request",
                       f"max_tokens {max_tokens} exceeds the limit {settings.max_tokens_limit}")


async def _prepare(services: Services, body: QueryRequest) -> Prepared:
    settings = services.settings
    _check_length(settings, "question", body.question)
    max_tokens = body.max_tokens or settings.default_max_tokens
    _check_max_tokens(settings, max_tokens)
    t0 = time.perf_counter()
    top_k = body.top_k or settings.default_top_k
    hits = await run_sync(services.pipeline.search, body.question, top_k,
                          to_filters(body.filters), body.mode)
    t1 = time.perf_counter()
    if not hits:
        prepared = services.pipeline.without_sources(
            body.question, max_tokens=max_tokens, max_context_tokens=body.max_context_tokens)
    else:
        prepared = await services.pipeline.prepare(body.question, hits, max_tokens=max_tokens,
                                                   max_context_tokens=body.max_context_tokens)
    prepared.timings = {"retrieval": round(t1 - t0, 4),
                        "packing": round(time.perf_counter() - t1, 4)}
    return prepared


def _source_out(source: Source, cited: set[int],
                attributed: frozenset[int] = frozenset()) -> dict[str, Any]:
    hit = source.hit
    return {"n": source.n, "document_id": hit.document_id, "parent_id": hit.parent_id,
            "source": hit.source, "title": hit.title, "file_type": hit.file_type,
            "pages": hit.pages, "text": source.text, "start": hit.start,
            "truncated": source.truncated, "rank": source.rank, "score": hit.score,
            "parent_text": hit.text if source.truncated else None,
            "cited": source.n in cited, "attributed": source.n in attributed,
            "passages": passages_out(hit)}


def _citation_out(c: Citation) -> dict[str, Any]:
    hit = c.source.hit
    return {"n": c.n, "document_id": hit.document_id, "parent_id": hit.parent_id,
            "source": hit.source, "title": hit.title, "pages": hit.pages, "quote": c.quote,
            "quote_start": c.quote_start, "quote_end": c.quote_end, "kind": c.kind}


def _record(request: Request, event: dict[str, Any]) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is None:
        return
    timings, usage = event["timings"], event["usage"]
    for stage in ("retrieval", "packing", "generation"):
        if stage in timings:
            metrics.stage.labels(stage).observe(timings[stage])
    metrics.tokens.labels("in").inc(usage.get("prompt_tokens") or 0)
    metrics.tokens.labels("out").inc(usage.get("completion_tokens") or 0)
    if usage.get("context_window"):
        metrics.context_fill.observe(usage["prompt_tokens"] / usage["context_window"])


def _final(services: Services, prepared: Prepared, event: dict[str, Any]) -> dict[str, Any]:
    cited = {c.n for c in event["citations"] if c.kind == "model"}
    attributed = frozenset(c.n for c in event["citations"] if c.kind == "attributed")
    return {"answer": event["answer"],
            "citations": [_citation_out(c) for c in event["citations"]],
            "invalid_citations": event["invalid_citations"],
            "unsupported_citations": event.get("unsupported_citations", []),
            "sources": [_source_out(s, cited, attributed) for s in prepared.sources],
            "usage": event["usage"], "timings": event["timings"],
            "model": services.settings.llm_model, "finish_reason": event["finish_reason"],
            "reason": None}


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


#: The answer when nothing matched: said at once, without asking the LLM (which would answer
#: from its own memory).
NO_MATCH_ANSWER = "No documents matched the question, so there is nothing to answer from."


def _no_match(services: Services, prepared: Prepared) -> dict[str, Any]:
    return {"answer": NO_MATCH_ANSWER, "citations": [], "invalid_citations": [],
            "unsupported_citations": [], "sources": [],
            "usage": {**prepared.usage(), "completion_tokens": 0}, "timings": prepared.timings,
            "model": services.settings.llm_model, "finish_reason": None,
            "reason": "no_matching_documents"}


async def _no_match_stream(services: Services, prepared: Prepared) -> AsyncIterator[bytes]:
    yield _sse("sources", {"sources": [], "usage": prepared.usage(),
                           "timings": prepared.timings, "model": services.settings.llm_model})
    yield _sse("final", _no_match(services, prepared))
    yield b"event: done\ndata: [DONE]\n\n"


async def query(services: Services, body: QueryRequest, request: Request,
                request_id: str | None) -> JSONResponse | StreamingResponse:
    prepared = await _prepare(services, body)
    if not prepared.sources:
        if body.stream:
            return StreamingResponse(_no_match_stream(services, prepared),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store"})
        return JSONResponse(_no_match(services, prepared))
    events = services.pipeline.stream_answer(prepared, temperature=body.temperature,
                                             request_id=request_id)
    # Wait for the LLM to accept (and send its first event) before choosing the response
    # type, so that "LLM down" is a 503 and not a 200 with an error inside.
    try:
        first = await events.__anext__()
    except StopAsyncIteration as exc:  # pragma: no cover (final always comes)
        raise APIError(502, "llm_bad_response", "LLM produced no events") from exc
    if body.stream:
        return StreamingResponse(_stream(services, prepared, first, events, request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})
    return JSONResponse(await _collect(services, prepared, first, events, request))


async def _collect(services: Services, prepared: Prepared, first: dict[str, Any],
                   events: AsyncIterator[dict[str, Any]], request: Request) -> dict[str, Any]:
    async def drain() -> dict[str, Any]:
        event = first
        while event["type"] != "final":
            event = await events.__anext__()
        return event

    task = asyncio.ensure_future(drain())
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if not done and await request.is_disconnected():
                task.cancel()  # the client left: stop generating (closes the vLLM stream)
                await events.aclose()
                raise APIError(499, "client_closed", "client disconnected")
        _record(request, task.result())
        return _final(services, prepared, task.result())
    finally:
        if not task.done():
            task.cancel()


async def _stream(services: Services, prepared: Prepared, first: dict[str, Any],
                  events: AsyncIterator[dict[str, Any]], request: Request
                  ) -> AsyncIterator[bytes]:
    yield _sse("sources", {"sources": [_source_out(s, set()) for s in prepared.sources],
                           "usage": prepared.usage(), "timings": prepared.timings,
                           "model": services.settings.llm_model})
    event: dict[str, Any] | None = first
    try:
        while event is not None:
            if event["type"] == "delta":
                yield _sse("delta", {"text": event["text"]})
            else:
                _record(request, event)
                yield _sse("final", _final(services, prepared, event))
                break
            event = await events.__anext__()
    except LLMError as exc:
        yield _sse("error", llm_error_body(exc))
    finally:
        await events.aclose()  # also runs when the client disconnects (cancellation)
    yield b"event: done\ndata: [DONE]\n\n"
