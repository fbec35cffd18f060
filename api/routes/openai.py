"""GET /v1/models and POST /v1/chat/completions: the grounded pipeline for OpenAI clients
(the sources in ``rag`` and in the response headers, ``api.headers``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from api import audit
from api.deps import ReaderDep, ScopeDep, ServicesDep
from api.observability import request_id_var
from api.openai import serving as openai_serving
from api.openai.protocol import ChatCompletion, ChatCompletionRequest, ModelList, OpenAIError
from api.routes.responses import errors, streamed

router = APIRouter(prefix="/v1", tags=["openai"])
_ERRORS = (400, 401, 404, 413, 502, 503, 504)


@router.get("/models", response_model=ModelList, responses=errors(401, model=OpenAIError))
async def list_models(services: ServicesDep, principal: ReaderDep) -> ModelList:
    return openai_serving.models(services)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=streamed(
        "chat.completion, or chat.completion.chunk events", *_ERRORS, model=OpenAIError
    ),
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    scope: ScopeDep,
    principal: ReaderDep,
) -> ChatCompletion | StreamingResponse:
    scope = scope.narrowed(tuple(body.rag.collections if body.rag else ()))
    answer = await openai_serving.chat(
        services, body, request, request_id_var.get(), response, scope
    )
    last = body.messages[-1].text() if body.messages else None
    audit.record(
        request,
        principal,
        "chat",
        scope=scope,
        question=last,
        documents=audit.answer_documents(
            answer if isinstance(answer, StreamingResponse) else response
        ),
    )
    return answer
