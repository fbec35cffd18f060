"""POST /v1/query: a grounded, cited answer (JSON, or Server-Sent Events with stream), its
sources also in the response headers (``api.headers``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from api import audit
from api.deps import ReaderDep, ScopeDep, ServicesDep
from api.native import serving
from api.native.protocol import QueryRequest, QueryResponse
from api.observability import request_id_var
from api.routes.responses import streamed

router = APIRouter(prefix="/v1", tags=["query"])


@router.post(
    "/query",
    response_model=QueryResponse,
    responses=streamed(
        "JSON, or SSE events sources/delta/final/done if stream", 413, 422, 502, 503, 504
    ),
)
async def query(
    body: QueryRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    scope: ScopeDep,
    principal: ReaderDep,
) -> QueryResponse | StreamingResponse:
    answer = await serving.query(services, body, request, request_id_var.get(), response, scope)
    audit.record(
        request,
        principal,
        "query",
        scope=scope,
        collections=serving.collections_of(body.filters),
        question=body.question,
        documents=audit.answer_documents(
            answer if isinstance(answer, StreamingResponse) else response
        ),
    )
    return answer
