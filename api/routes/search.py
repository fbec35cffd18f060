"""POST /v1/search: ranked parent chunks, no LLM involved."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ScopeDep, ServicesDep
from api.native import serving
from api.native.protocol import ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post(
    "/search",
    response_model=SearchResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def search(body: SearchRequest, services: ServicesDep, scope: ScopeDep) -> SearchResponse:
    return await serving.search(services, body, scope)
