"""GET /v1/audit: the audit trail (admins), newest first, from the current file and the
rotated ones (``rag.audit.log``)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AdminDep, ServicesDep
from api.errors import APIError
from api.routes.responses import errors
from rag.answer.pipeline import run_sync
from rag.audit import audit_log
from rag.audit.log import parse_time

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditPage(BaseModel):
    entries: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _moment(name: str, value: str | None) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        raise APIError(
            422, "invalid_request", f"{name}: an ISO 8601 time or epoch seconds"
        ) from None


@router.get("", response_model=AuditPage, responses=errors(422))
async def read_audit(
    services: ServicesDep,
    principal: AdminDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    who: str | None = Query(None, alias="principal", max_length=200),
    since: str | None = Query(None, max_length=64, description="ISO 8601 or epoch seconds"),
    until: str | None = Query(None, max_length=64, description="ISO 8601 or epoch seconds"),
) -> AuditPage:
    """Lines newest first; ``principal``, ``since`` (inclusive), ``until`` (exclusive)."""
    read = functools.partial(
        audit_log(services.settings).read,
        principal=who,
        since=_moment("since", since),
        until=_moment("until", until),
        limit=limit,
        offset=offset,
    )
    entries, total = await run_sync(read)
    return AuditPage(entries=entries, total=total, limit=limit, offset=offset)
