"""One error shape for every failure: ``{"error": {"code", "message", "details"?}}``.

Clients get a code and a short message; what only an operator should see (upstream URLs and
error texts, store paths, tracebacks) goes to the log, tied to the response by its request
id (``X-Request-Id``, also in the body of every 5xx).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.jobs import QueueUnavailable
from rag.answer.budget import BudgetError
from rag.answer.events import InvalidRequest
from rag.answer.llm import LLMError, LLMFailure
from rag.store.schema import StoreError

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


def error_body(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    from api.observability import request_id_var

    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    if status >= 500:
        body["request_id"] = request_id_var.get()
    return {"error": body}


def valid_uuid(value: str, what: str) -> str:
    """A path id in canonical UUID form, or a 422 naming what it should have been."""
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise APIError(
            422, "invalid_request", f"{what} id must be a UUID, got {value[:80]!r}"
        ) from exc


def is_openai_path(path: str) -> bool:
    """Routes that speak OpenAI's protocol, errors included."""
    return path.startswith("/v1/chat/") or path == "/v1/models"


_OPENAI_TYPES = {
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
}
_OPENAI_CODES = {"unauthorized": "invalid_api_key", "context_too_large": "context_length_exceeded"}


def openai_error_body(
    status: int, code: str, message: str, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's shape (``error.message``, ``type``, ``param``, ``code``), as vLLM sends it;
    ``param`` names the request field at fault, when one is."""
    kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status, "invalid_request_error")
    return {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": _OPENAI_CODES.get(code, code),
        }
    }


def respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error in the shape of the route: ours, or OpenAI's on its routes (where a
    validation error is a 400, as OpenAI and vLLM answer; ``details["param"]`` is its
    ``param``)."""
    if is_openai_path(request.url.path):
        status = 400 if status == 422 else status
        param = (details or {}).get("param")
        return JSONResponse(
            openai_error_body(status, code, message, param), status_code=status, headers=headers
        )
    return JSONResponse(
        error_body(status, code, message, details), status_code=status, headers=headers
    )


#: The status of each kind of LLM failure: nothing answered, too slow, a wrong answer.
LLM_STATUS: dict[LLMFailure, int] = {
    LLMFailure.unavailable: 503,
    LLMFailure.timeout: 504,
    LLMFailure.bad_response: 502,
    LLMFailure.error: 502,
}


def llm_status(exc: LLMError) -> int:
    return LLM_STATUS.get(exc.code, 502)


def llm_error_body(exc: LLMError, *, openai: bool = False) -> dict[str, Any]:
    """Logs the details, returns what the client may see (JSON responses and stream
    events), in our shape or, with ``openai``, in OpenAI's."""
    log.warning("LLM failure %s: %s", exc.code, exc)
    if openai:
        return openai_error_body(llm_status(exc), exc.code, exc.public)
    return error_body(llm_status(exc), exc.code, exc.public)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return respond(request, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            401: "unauthorized",
        }.get(exc.status_code, "http_error")
        return respond(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(InvalidRequest)
    async def _invalid_request(request: Request, exc: InvalidRequest) -> JSONResponse:
        return respond(request, 422, "invalid_request", str(exc))

    @app.exception_handler(BudgetError)
    async def _budget(request: Request, exc: BudgetError) -> JSONResponse:
        return respond(request, 413, "context_too_large", str(exc), exc.numbers)

    @app.exception_handler(LLMError)
    async def _llm(request: Request, exc: LLMError) -> JSONResponse:
        llm_error_body(exc)  # logs the details
        return respond(request, llm_status(exc), exc.code, exc.public)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store failure: %s", exc)
        return respond(request, 503, "store_unavailable", "the document store is not available")

    @app.exception_handler(QueueUnavailable)
    async def _queue(request: Request, exc: QueueUnavailable) -> JSONResponse:
        log.warning("ingestion queue unavailable: %s", exc)
        return respond(
            request,
            503,
            "queue_unavailable",
            "the ingestion queue (Redis) is not reachable; nothing was enqueued "
            "(uploaded files stay in the inbox and are enqueued at the next start)",
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return respond(request, 500, "internal_error", "internal error; the log has the details")
