"""POST /v1/search: ranked parent chunks, no LLM involved."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api import audit
from api.deps import ReaderDep, ScopeDep, ServicesDep
from api.native import serving
from api.native.protocol import SearchRequest, SearchResponse
from api.routes.responses import errors

router = APIRouter(prefix="/v1", tags=["search"])


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=errors(422, 503),
)
async def search(
    body: SearchRequest,
    request: Request,
    services: ServicesDep,
    scope: ScopeDep,
    principal: ReaderDep,
) -> SearchResponse:
    found = await serving.search(services, body, scope)
    audit.record(
        request,
        principal,
        "search",
        scope=scope,
        collections=serving.collections_of(body.filters),
        question=body.query,
        documents=[r.document_id for r in found.results],
    )
    return found
