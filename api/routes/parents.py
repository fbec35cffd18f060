"""GET /v1/parents/{parent_id}: one parent chunk's text (search results leave it out)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import ServicesDep
from api.errors import APIError
from api.protocol import ErrorResponse, ParentOut
from rag.pipeline import run_sync

router = APIRouter(prefix="/v1/parents", tags=["search"])


@router.get("/{parent_id}", response_model=ParentOut,
            responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
async def get_parent(parent_id: str, services: ServicesDep) -> ParentOut:
    try:
        key = str(uuid.UUID(parent_id))
    except ValueError as exc:
        raise APIError(422, "invalid_request",
                       f"parent id must be a UUID, got {parent_id[:80]!r}") from exc
    parent = await run_sync(services.store.parent, key)
    if parent is None:
        raise APIError(404, "not_found", f"no parent with id {key}")
    return ParentOut(parent_id=key, document_id=parent.document_id, source=parent.source,
                     title=parent.title, file_type=parent.file_type, pages=parent.pages,
                     heading=parent.heading, text=parent.text, start=parent.start,
                     end=parent.end, tokens=parent.tokens)
