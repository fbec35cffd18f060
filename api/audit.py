"""The audit trail from the routes: one line per request that reads or changes documents
(``rag.audit.log`` writes and reads the file; ``GET /v1/audit`` is ``api.routes.audit``).

``record(request, principal, event, ...)`` fills in the route, the request id and the
settings' question policy; other writers (HB's PATCH) call it the same way."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from api.headers import SOURCES
from api.observability import request_id_var, route_label
from rag.access import Principal, ReadScope
from rag.audit import audit_log


def record(
    request: Request,
    principal: Principal,
    event: str,
    *,
    scope: ReadScope | None = None,
    collections: list[str] | tuple[str, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """Append the line of this request (``fields``: ``documents``, ``question``,
    ``before``, ``after``...; ``rag.audit.AuditLog.record``)."""
    wanted = set(collections) | set(scope.collections if scope is not None else ())
    return audit_log(request.app.state.services.settings).record(
        event,
        principal=principal,
        route=f"{request.method} {route_label(request.scope)}",
        request_id=request_id_var.get(),
        collections=sorted(wanted),
        **fields,
    )


def answer_documents(response: Response) -> list[str]:
    """The document ids an answer showed the model, from its ``X-RAG-Sources`` header (set
    on the JSON response and on the stream alike; cut to its byte bound, see
    ``api.headers``)."""
    try:
        items = json.loads(response.headers.get(SOURCES, "[]"))
    except ValueError:
        return []
    return [str(i["document_id"]) for i in items if isinstance(i, dict) and "document_id" in i]
