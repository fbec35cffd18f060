"""POST /v1/feedback: a thumbs up or down (and an optional comment) on an answer, from any
principal that may read; GET /v1/feedback: the export (admins), as JSON or JSON lines (the
file ``python -m bench evaluate --from-feedback`` reads). Stored by ``rag.feedback``: on
disk, fsync'd before the 201, so an acknowledged rating survives a restart. The request
body is ``rag.feedback.Feedback`` (strict, bounded: an over-long field is a 422 naming its
bound); a file that cannot be written is a 503 ``feedback_unavailable``, never a 500."""

from __future__ import annotations

import functools
import logging
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api import audit
from api.deps import AdminDep, ReaderDep, ServicesDep
from api.errors import APIError
from api.routes.responses import errors
from rag.answer.pipeline import run_sync
from rag.audit.log import parse_time
from rag.feedback import (
    Feedback,
    FeedbackFull,
    FeedbackRecord,
    FeedbackStore,
    Rating,
    feedback_store,
)
from rag.settings import FeedbackSettings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/feedback", tags=["feedback"])
JSONL = "application/x-ndjson"


class FeedbackCreated(BaseModel):
    """The stored rating's id and time."""

    id: str
    time: str = Field(description="ISO 8601, UTC")


class FeedbackPage(BaseModel):
    """Ratings oldest first, newest last (the last ``limit`` that match)."""

    feedback: list[FeedbackRecord]
    total: int = Field(description="how many match (more than listed when cut by limit)")
    limit: int


def _store(settings: FeedbackSettings) -> FeedbackStore:
    try:
        return feedback_store(settings)
    except OSError as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: OSError) -> APIError:
    log.error("feedback: %s", exc)  # the path stays in the log
    return APIError(503, "feedback_unavailable", "feedback could not be stored or read")


@router.post(
    "",
    status_code=201,
    response_model=FeedbackCreated,
    responses=errors(403, 422, 503, 507),
)
async def give_feedback(
    body: Feedback, request: Request, services: ServicesDep, principal: ReaderDep
) -> FeedbackCreated:
    store = _store(services.settings.feedback)
    try:
        record = await run_sync(functools.partial(store.append, body, principal=principal.name))
    except FeedbackFull as exc:
        log.error("feedback: %s", exc)
        raise APIError(
            507, "feedback_full", "the feedback file is full: an admin must export and move it"
        ) from exc
    except OSError as exc:
        raise _unavailable(exc) from exc
    # The sources are the client's word, not checked against what it may read: counted in
    # the audit line, never listed as documents it touched.
    audit.record(
        request,
        principal,
        "feedback",
        after={"feedback_id": record.id, "rating": record.rating, "sources": len(body.sources)},
    )
    return FeedbackCreated(id=record.id, time=record.time)


@router.get(
    "",
    response_model=FeedbackPage,
    responses={
        **errors(403, 422, 503),
        200: {"content": {JSONL: {}}, "description": "JSON, or one record a line if jsonl"},
    },
)
async def export_feedback(
    services: ServicesDep,
    principal: AdminDep,
    limit: int = Query(1000, ge=1, le=100_000),
    since: str | None = Query(None, max_length=64, description="ISO 8601 or epoch seconds"),
    rating: Rating | None = Query(None),
    fmt: Literal["json", "jsonl"] = Query("json", alias="format"),
) -> FeedbackPage | Response:
    """``since`` inclusive; ``format=jsonl``: the records as JSON lines (no envelope)."""
    try:
        moment = parse_time(since)
    except ValueError:
        raise APIError(422, "invalid_request", "since: an ISO 8601 time or epoch seconds") from None
    store = _store(services.settings.feedback)
    try:
        records, total = await run_sync(
            functools.partial(store.read, since=moment, rating=rating, limit=limit)
        )
    except OSError as exc:
        raise _unavailable(exc) from exc
    if fmt == "jsonl":
        text = "".join(r.model_dump_json() + "\n" for r in records)
        return Response(text, media_type=JSONL, headers={"X-Total-Count": str(total)})
    return FeedbackPage(feedback=records, total=total, limit=limit)
