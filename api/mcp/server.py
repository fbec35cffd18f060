"""The MCP server of the API: the tools of ``api.mcp.tools`` over Streamable HTTP at /mcp.

Stateless Streamable HTTP (the SDK's choice for a server mounted in an existing app and run
behind load balancers): every POST carries one JSON-RPC message and is answered on its own
SSE stream (progress notifications, then the result), so each tool call runs as the
principal of *its* HTTP request, which ``api.security`` authenticated before routing like
any /v1 request. No session outlives a request, so none can be taken over by another key.

The session manager's task group is started by the app's lifespan (``run``). Around every
``tools/call`` (``ToolGate``, an SDK server middleware): the arguments are checked against
the tool's schema with the REST API's 422 message, the principal must be allowed to read,
and a per-principal token bucket (``RAG_MCP_CALLS_PER_MINUTE``) bounds the rate of calls.
"""

from __future__ import annotations

import inspect
import threading
import time
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import APIError
from api.mcp import tools
from api.observability import request_id_var
from api.security import is_loopback
from rag import tracing
from rag.settings import ApiSettings

#: Where ``api.observability`` leaves the request id and the request's trace context.
REQUEST_ID_KEY = "request_id"
TRACE_CONTEXT_KEY = "trace_context"

INSTRUCTIONS = (
    "Grounded answers over the documents of this RAG service, with citations. Use `ask` for "
    "an answer with numbered citations and sources; `search` for ranked passages without an "
    "LLM; `fetch_parent` / `fetch_document` to read more of a result; `list_documents` to "
    "see what is indexed. You only ever see documents your key may read."
)


class TokenBucket:
    """``per_minute`` calls a minute for each key (principal), bursts up to as many."""

    def __init__(self, per_minute: int, clock: typing.Callable[[], float] = time.monotonic):
        self.capacity, self.rate = float(per_minute), per_minute / 60.0
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """0 when a call is allowed now (and counted), else the seconds until one is."""
        if self.capacity <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > 10_000:  # forget the full ones: they are the default
                    self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.capacity}
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def arguments_model(fn: Any) -> type[BaseModel]:
    """The tool's arguments as a strict model (unknown names refused, as the REST API's
    bodies), from the same annotations the SDK builds the tool's input schema from."""
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name == "ctx":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hints[name], default)
    model: type[BaseModel] = create_model(
        f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


class ToolGate:
    """SDK server middleware around ``tools/call``: arguments, principal, rate, request id,
    and a ``mcp.tool`` span (a child of the HTTP request's)."""

    def __init__(self, calls_per_minute: int) -> None:
        self.bucket = TokenBucket(calls_per_minute)
        self.per_minute = calls_per_minute
        self.models = {name: arguments_model(fn) for name, fn in tools.TOOLS.items()}

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        name = params.get("name")
        request = ctx.request if isinstance(ctx.request, Request) else None
        state = request.scope.get("state", {}) if request is not None else {}
        token = request_id_var.set(state.get(REQUEST_ID_KEY) or request_id_var.get())
        try:
            with (
                tracing.attached(state.get(TRACE_CONTEXT_KEY)),
                tracing.span("mcp.tool", rag_tool=name if isinstance(name, str) else None) as span,
            ):
                result = await self._gate(ctx, call_next, name, params.get("arguments"), request)
                if getattr(result, "is_error", False):
                    tracing.set_attrs(span, rag_tool_error=True)
                return result
        finally:
            request_id_var.reset(token)

    async def _gate(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
        name: Any,
        arguments: Any,
        request: Request | None,
    ) -> HandlerResult:
        try:
            if request is None:
                raise APIError(401, "unauthorized", "missing or invalid credentials")
            principal = tools.principal_of(request)
            tools.require_read(principal)
            model = self.models.get(name) if isinstance(name, str) else None
            if model is None:
                raise APIError(404, "not_found", f"no tool named {str(name)[:80]!r}")
            wait = self.bucket.take(f"{principal.source}:{principal.name}")
            if wait > 0:
                raise APIError(
                    429,
                    "rate_limited",
                    f"at most {self.per_minute} tool calls a minute; retry in {wait:.1f} s",
                    {"retry_after_s": round(wait, 1)},
                )
            model.model_validate(arguments if arguments is not None else {})
        except (APIError, ValidationError) as exc:
            return tools.error_result(exc)
        return await call_next(ctx)


class RagMCP:
    """The MCP server, its session manager and the ASGI endpoint mounted at /mcp."""

    def __init__(self, settings: ApiSettings) -> None:
        self.server: MCPServer[Any] = MCPServer(
            "rag-service",
            title="RAG service",
            version="0.1.0",
            instructions=INSTRUCTIONS,
            middleware=[ToolGate(settings.mcp_calls_per_minute)],
        )
        read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        for name, fn in tools.TOOLS.items():
            self.server.add_tool(fn, name=name, annotations=read_only, structured_output=False)
        # Behind a loopback bind, refuse other Host headers (DNS rebinding: a web page
        # resolving its own name to 127.0.0.1); elsewhere the proxy in front owns names.
        security = (
            TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
            if is_loopback(settings.api_host)
            else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        )
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=False,  # SSE: progress notifications before the result
            transport_security=security,
            max_request_body_size=settings.max_request_bytes,
        )
        self.manager = self.server.session_manager
        self.endpoint = StreamableHTTPASGIApp(self.manager)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    def route(self, path: str = "/mcp") -> Route:
        endpoint = _Endpoint(self.endpoint)
        endpoint.route = Route(path, endpoint=endpoint, methods=["GET", "POST", "DELETE"])
        return endpoint.route


class _Endpoint:
    """A plain ASGI endpoint (a class instance: Starlette's Route passes it the raw scope),
    which names its route in the scope as FastAPI's routes do (metrics, access log, spans)."""

    def __init__(self, app: StreamableHTTPASGIApp) -> None:
        self.app = app
        self.route: Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        await self.app(scope, receive, send)
