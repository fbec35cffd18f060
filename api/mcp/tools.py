"""The MCP tools: search, ask, fetch_document, fetch_parent, list_documents.

Each tool runs as the principal of its HTTP request (``api.security`` put it in the ASGI
scope's state; ``principal_of``) and reads only within that principal's scope, through the
same use cases as the REST routes: ``search`` is ``POST /v1/search``, ``ask`` is ``POST
/v1/query`` (the same pipeline, budget and limits: its arguments are validated as a
``QueryRequest``). Outputs are JSON (``structuredContent`` and the same text), bounded by
``max_chars``; whatever had to be cut says so (``truncated``).

Failures are tool errors (``isError``) whose text is the REST API's error body, code and
message included (``{"error": {"code": ..., "message": ...}}``): never a traceback or an
upstream URL (those go to the log, as in ``api.errors``).

Why one module of ~500 lines: the five tools share their argument models, the principal and
scope lookup, the error results and the output bounding (``fit``); an agent's whole tool
surface reads in one place, and each tool is a short function over those helpers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import Field, ValidationError
from qdrant_client import models as qm
from starlette.requests import Request

from api.deps import PRINCIPAL_KEY, Services, read_scope
from api.errors import APIError, error_body, llm_error_body, llm_status, valid_uuid
from api.native import serving
from api.native.protocol import Filters, HistoryMessage, QueryRequest
from rag.access import Action, Principal, ReadScope
from rag.answer.budget import BudgetError
from rag.answer.events import (
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    InvalidRequest,
    SourcesEvent,
)
from rag.answer.llm import LLMError
from rag.answer.pipeline import run_sync
from rag.answer.workers import run_search
from rag.settings import RetrievalMode
from rag.store.payloads import ParentPayload
from rag.store.schema import StoreError
from rag.store.search import SearchFilters

log = logging.getLogger(__name__)

#: The default output bound of a tool (characters of its JSON), and the most one may ask.
DEFAULT_MAX_CHARS = 20_000
MAX_CHARS_LIMIT = 200_000
TRUNCATED = " …[truncated]"

MaxChars = Annotated[
    int,
    Field(
        ge=200,
        le=MAX_CHARS_LIMIT,
        description="upper bound on the characters of the output; longer texts are cut and "
        "marked truncated",
    ),
]
TopK = Annotated[
    int | None, Field(ge=1, le=100, description="how many results (default: the server's)")
]
FiltersArg = Annotated[
    Filters | None,
    Field(description="restrict to documents (ids), folders (absolute paths) or file types"),
]
CollectionArg = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="search only this collection (tenant index) of those you may read",
    ),
]
ModeArg = Annotated[
    RetrievalMode | None, Field(description="hybrid (default), dense or sparse retrieval")
]


# --- the request's principal and services ------------------------------------------------
def http_request(ctx: Context) -> Request:
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise APIError(401, "unauthorized", "missing or invalid credentials")
    return request


def principal_of(request: Request) -> Principal:
    """The principal the authentication middleware attached (the same rule as
    ``api.deps.get_principal``: none is a 401)."""
    principal = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    raise APIError(401, "unauthorized", "missing or invalid credentials")


def require_read(principal: Principal) -> None:
    if not principal.can(Action.read):  # as api.deps.require(Action.read)
        raise APIError(
            403,
            "forbidden",
            f"the {principal.role.value} role may not {Action.read.value} "
            f"(signed in as {principal.name})",
        )


def services_of(request: Request) -> Services:
    return request.app.state.services


def _scope(request: Request) -> tuple[Services, ReadScope]:
    services = services_of(request)
    return services, read_scope(principal_of(request), services.settings.access)


# --- results and errors ------------------------------------------------------------------
def ok(payload: dict[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(payload, ensure_ascii=False))],
        structured_content=payload,
    )


def failure(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> CallToolResult:
    body = error_body(status, code, message, details)
    body["error"]["status"] = status
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body, ensure_ascii=False))],
        structured_content=body,
        is_error=True,
    )


def validation_message(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """The REST API's 422 message (``api.errors``): up to five ``where: what`` parts."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in (*prefix, *err.get("loc", ())))
        parts.append(f"{where or 'arguments'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid arguments"


def error_result(exc: BaseException) -> CallToolResult:
    """The tool error for ``exc``, as the REST handlers (``api.errors``) would answer it."""
    if isinstance(exc, APIError):
        return failure(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, ValidationError):
        return failure(422, "invalid_request", validation_message(exc))
    if isinstance(exc, InvalidRequest):
        return failure(422, "invalid_request", str(exc))
    if isinstance(exc, BudgetError):
        return failure(413, "context_too_large", str(exc), exc.numbers)
    if isinstance(exc, LLMError):
        llm_error_body(exc)  # logs the details
        return failure(llm_status(exc), exc.code, exc.public)
    if isinstance(exc, StoreError):
        log.error("store failure: %s", exc)
        return failure(503, "store_unavailable", "the document store is not available")
    log.error("unhandled error in an MCP tool", exc_info=exc)
    return failure(500, "internal_error", "internal error; the log has the details")


def guarded(fn: Any) -> Any:
    """Any exception of a tool becomes its tool error (``error_result``)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            return error_result(exc)

    return run


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` within ``limit`` characters, the cut marked."""
    if len(text) <= limit:
        return text, False
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED, True


def fit(
    payload: dict[str, Any], items: str, fields: tuple[str, ...], max_chars: int
) -> dict[str, Any]:
    """``payload`` within ``max_chars`` of JSON: the long ``fields`` of its ``items`` are cut
    to an equal share each (marked), then items dropped from the end when still too long."""
    if len(json.dumps(payload, ensure_ascii=False)) <= max_chars:
        payload["truncated"] = False
        return payload
    payload["truncated"] = True
    entries: list[dict[str, Any]] = payload[items]
    bare = json.dumps({**payload, items: [{**e, **dict.fromkeys(fields, "")} for e in entries]})
    texts = sum(1 for e in entries for f in fields if e.get(f))
    share = max(80, (max_chars - len(bare)) // max(1, texts))
    for entry in entries:
        for name in fields:
            if entry.get(name):
                entry[name], was_cut = cut(entry[name], share)
                if was_cut:
                    entry["text_truncated"] = True
    while entries and len(json.dumps(payload, ensure_ascii=False)) > max_chars:
        entries.pop()
        payload["omitted"] = payload.get("omitted", 0) + 1
    return payload


def _filters(filters: Filters | None, collection: str | None) -> SearchFilters | None:
    base = serving.to_filters(filters)
    if collection is None:
        return base
    return SearchFilters(
        document_ids=base.document_ids if base else [],
        folders=base.folders if base else [],
        file_types=base.file_types if base else [],
        collections=[collection],
    )


# --- the tools -----------------------------------------------------------------------------
@guarded
async def search(
    query: Annotated[str, Field(min_length=1, max_length=8000, description="what to look for")],
    ctx: Context,
    top_k: TopK = None,
    filters: FiltersArg = None,
    collection: CollectionArg = None,
    mode: ModeArg = None,
    max_chars: MaxChars = DEFAULT_MAX_CHARS,
) -> CallToolResult:
    """Search the documents you may read: ranked passages (best first), each with its source
    file, pages, heading, the best matching snippet, its score, and the ids to read more
    (`fetch_parent` with parent_id, `fetch_document` with document_id). No LLM is involved."""
    services, scope = _scope(http_request(ctx))
    started = time.perf_counter()
    hits = await run_search(
        functools.partial(services.pipeline.search, scope=scope),
        query,
        top_k,
        _filters(filters, collection),
        mode,
    )
    results = []
    for rank, hit in enumerate(hits, 1):
        out = serving.hit_out(hit, ("snippet",))
        results.append(
            {
                "rank": rank,
                "parent_id": out.parent_id,
                "document_id": out.document_id,
                "source": out.source,
                "title": out.title,
                "file_type": out.file_type,
                "pages": out.pages,
                "heading": out.heading,
                "score": round(out.score, 6),
                "snippet": out.snippet or "",
            }
        )
    payload = {
        "query": query,
        "results": results,
        "timings": {"retrieval": round(time.perf_counter() - started, 4)},
    }
    return ok(fit(payload, "results", ("snippet",), max_chars))


@guarded
async def ask(
    question: Annotated[
        str, Field(min_length=1, max_length=8000, description="the question to answer")
    ],
    ctx: Context,
    history: Annotated[
        list[HistoryMessage] | None,
        Field(
            max_length=2000,
            description="earlier turns of the conversation, oldest first "
            "({role: user|assistant, content}); a follow-up is rewritten into a search query",
        ),
    ] = None,
    top_k: TopK = None,
    filters: FiltersArg = None,
    collection: CollectionArg = None,
    max_tokens: Annotated[
        int | None, Field(ge=1, description="answer length limit (at most the server's)")
    ] = None,
    max_chars: MaxChars = DEFAULT_MAX_CHARS,
) -> CallToolResult:
    """Answer a question from the documents you may read, with numbered citations [n] and
    the sources they point at (file, pages, quote). The same grounded answer, pipeline and
    budget as POST /v1/query; progress is reported after retrieval and as the answer
    streams. When nothing relevant is found, `reason` says so and no answer is invented."""
    request = http_request(ctx)
    services, scope = _scope(request)
    body = QueryRequest(
        question=question,
        history=history or [],
        top_k=top_k,
        max_tokens=max_tokens,
        filters=filters,
        max_context_tokens=None,
        temperature=0.0,
        include=[],
    )
    answer = serving.answer_request(body, request.scope.get("state", {}).get("request_id"), scope)
    if collection is not None:
        answer = _with_collection(answer, collection)
    await ctx.report_progress(0, None, "searching")
    events = services.pipeline.answer(answer)
    final: FinalEvent | None = None
    async with contextlib.aclosing(events):
        progress, last = 1.0, 0.0
        async for event in events:
            if isinstance(event, SourcesEvent):
                await ctx.report_progress(
                    progress, None, f"retrieved {len(event.sources)} sources; generating"
                )
            elif isinstance(event, DeltaEvent):
                progress += 1
                now = time.monotonic()
                if now - last >= 0.25:  # at most four a second
                    last = now
                    await ctx.report_progress(progress, None, f"generating ({int(progress) - 1})")
            elif isinstance(event, ErrorEvent):
                return error_result(event.error)
            elif isinstance(event, FinalEvent):
                final = event
    if final is None:  # the pipeline always ends with one
        raise RuntimeError("the answer ended without a final event")
    out = serving.final_out(services, final, []).model_dump(mode="json")
    payload = {
        "answer": out["answer"],
        "citations": out["citations"],
        "sources": [
            {
                k: s[k]
                for k in (
                    "n",
                    "document_id",
                    "parent_id",
                    "source",
                    "title",
                    "pages",
                    "cited",
                    "text",
                )
            }
            for s in out["sources"]
        ],
        "invalid_citations": out["invalid_citations"],
        "reason": out["reason"],
        "finish_reason": out["finish_reason"],
        "search_query": out["search_query"],
        "follow_up_queries": out["follow_up_queries"],
        "usage": out["usage"],
        "timings": out["timings"],
        "model": out["model"],
    }
    await ctx.report_progress(progress + 1, progress + 1, "done")
    return ok(fit(payload, "sources", ("text",), max_chars))


def _with_collection(request: Any, collection: str) -> Any:
    from dataclasses import replace

    filters = request.filters or SearchFilters()
    return replace(request, filters=replace(filters, collections=[collection]))


@guarded
async def fetch_parent(
    parent_id: Annotated[str, Field(description="a parent_id from search or ask")],
    ctx: Context,
    max_chars: MaxChars = DEFAULT_MAX_CHARS,
) -> CallToolResult:
    """The text of one parent chunk (the passage's surrounding section, thousands of tokens)
    with its source, pages and offsets in its document; cut at `max_chars` (marked)."""
    services, scope = _scope(http_request(ctx))
    key = valid_uuid(parent_id, "parent")
    parent = await run_sync(services.store.search.parent, key, scope)
    if parent is None:
        raise APIError(404, "not_found", f"no parent with id {key}")
    text, truncated = cut(parent.text, max_chars)
    return ok(
        {
            "parent_id": key,
            "document_id": parent.document_id,
            "source": parent.display_name,
            "title": parent.title,
            "pages": parent.pages,
            "heading": parent.heading,
            "start": parent.start,
            "end": parent.end,
            "tokens": parent.tokens,
            "text": text,
            "truncated": truncated,
        }
    )


@guarded
async def fetch_document(
    document_id: Annotated[
        str, Field(description="a document_id from search, ask or list_documents")
    ],
    ctx: Context,
    offset: Annotated[
        int, Field(ge=0, description="start at this character of the text (paging)")
    ] = 0,
    max_chars: MaxChars = DEFAULT_MAX_CHARS,
) -> CallToolResult:
    """A document's text (its parent chunks in order) from character `offset`, at most
    `max_chars` of it; `next_offset` continues where a truncated text stopped."""
    services, scope = _scope(http_request(ctx))
    doc_id = valid_uuid(document_id, "document")
    record = await run_sync(services.store.documents.get_document, doc_id, scope)
    if record is None:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    parents = await run_sync(_parents_of, services, doc_id, record.content_hash or "")
    full = "\n\n".join(p.text for p in parents)
    text, truncated = cut(full[offset:], max_chars)
    shown = len(text) - (len(TRUNCATED) if truncated else 0)
    return ok(
        {
            "document_id": doc_id,
            "source": record.display_name,
            "title": record.title,
            "file_type": record.file_type,
            "pages": record.pages,
            "chars": len(full),
            "offset": offset,
            "text": text,
            "truncated": truncated,
            "next_offset": offset + shown if truncated else None,
        }
    )


def _parents_of(services: Services, document_id: str, content_hash: str) -> list[ParentPayload]:
    """The committed version's parents of a document (its record was checked against the
    scope: its parents share its access), in document order."""
    store = services.store
    flt = qm.Filter(
        must=[
            qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id)),
            qm.FieldCondition(key="content_hash", match=qm.MatchValue(value=content_hash)),
        ]
    )
    found: list[ParentPayload] = []
    offset: Any = None
    with store.session() as client:
        while True:
            points, offset = client.scroll(
                store.search.parents, scroll_filter=flt, limit=256, offset=offset, with_payload=True
            )
            found += [ParentPayload.from_payload(p.payload) for p in points]
            if offset is None:
                break
    return sorted(found, key=lambda p: p.parent_index)


@guarded
async def list_documents(
    ctx: Context,
    offset: Annotated[int, Field(ge=0, description="skip this many documents")] = 0,
    limit: Annotated[int, Field(ge=1, le=200, description="documents per page")] = 50,
) -> CallToolResult:
    """The documents you may read, by source path, a page at a time: ids, source, title,
    type, pages, size in tokens; `next_offset` is the next page (null on the last)."""
    services, scope = _scope(http_request(ctx))
    records = await run_sync(services.store.documents.list_documents, scope)
    page = records[offset : offset + limit]
    end = offset + len(page)
    return ok(
        {
            "documents": [
                {
                    "document_id": r.document_id,
                    "source": r.display_name,
                    "title": r.title,
                    "file_type": r.file_type,
                    "pages": r.pages,
                    "parents": r.parents,
                    "tokens": r.tokens,
                    "collection": r.collection,
                    "ingested_at": r.ingested_at,
                }
                for r in page
            ],
            "total": len(records),
            "offset": offset,
            "next_offset": end if end < len(records) else None,
        }
    )


TOOLS = {
    "search": search,
    "ask": ask,
    "fetch_parent": fetch_parent,
    "fetch_document": fetch_document,
    "list_documents": list_documents,
}
