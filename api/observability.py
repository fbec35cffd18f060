"""Request ids, structured JSON logs, Prometheus metrics and request-body limits.

Everything here is ASGI middleware or plain objects, so it wraps streaming responses too.
Each app has its own metrics registry (tests build many apps in one process).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.outcomes import Outcome, Summary
from rag import tracing

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.scraping = asyncio.Lock()
        self.requests = Histogram(
            "rag_http_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.stage = Histogram(
            "rag_stage_seconds",
            "Query stage latency",
            ["stage"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.tokens = Counter(
            "rag_llm_tokens_total",
            "Tokens sent to / received from the LLM",
            ["direction"],
            registry=r,
        )
        self.context_fill = Histogram(
            "rag_context_fill_ratio",
            "Prompt tokens / context window per query",
            registry=r,
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        )
        self.files = Counter(
            "rag_ingest_files_total", "Files seen by ingestion, by outcome", ["outcome"], registry=r
        )
        self.passages = Counter(
            "rag_ingest_passages_total", "Passages embedded and stored", registry=r
        )
        self.queue = Gauge(
            "rag_ingest_queue_depth",
            "Ingest jobs queued or running (with RAG_BROKER_URL: tasks waiting in the queue)",
            registry=r,
        )

    async def scrape(self) -> bytes:
        """The Prometheus text, made in a worker thread: collectors may block (Redis
        counts, the queue depth) and serialising is CPU work, neither of which may stall
        the loop. One scrape at a time, so a flood of scrapes holds one worker thread, not
        the pool the store calls share."""
        async with self.scraping:
            return await asyncio.to_thread(generate_latest, self.registry)

    def watch_queue(self, outcomes: Callable[[], dict[str, int]]) -> None:
        """Task outcomes of every worker, as counted in Redis (done, unchanged, failed,
        retried): one scrape of the API covers the whole fleet."""
        self.registry.register(_QueueOutcomes(outcomes))

    def record_ingest(self, summary: Summary) -> None:
        """A finished in-process run: its files by outcome, the passages it stored."""
        for state in Outcome:
            self.files.labels(state.value).inc(len(summary.of_state(state)))
        self.passages.inc(summary.passages)


class _QueueOutcomes(Collector):
    def __init__(self, outcomes: Callable[[], dict[str, int]]) -> None:
        self.outcomes = outcomes

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "rag_ingest_queue_files",
            "Files finished by queue workers, and task retries",
            labels=["outcome"],
        )
        try:
            counts = self.outcomes()
        except Exception:  # Redis down: leave the series out rather than fail the scrape
            counts = {}
        for outcome in ("done", "unchanged", "failed", "retried"):
            family.add_metric([outcome], counts.get(outcome, 0))
        yield family

    def describe(self) -> list[Any]:
        return []


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
            **tracing.log_fields(),  # trace_id, span_id: only when tracing is on
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure_logging(json_logs: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JSONFormatter()
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


#: The methods a ``method`` label may name; any other is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/documents/{document_id}``), never the path a
    client sent: a path that matched no route (a 401 before routing included) is
    ``unmatched``. With the fixed methods, every label comes from a fixed set, so requests
    cannot grow the registry."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestContextMiddleware:
    """Request id (from X-Request-Id or new), latency metrics, one access log line.

    Meant to wrap the whole application, Starlette's error middleware included
    (``api.app``): the id exists before any handler runs, so the 500 of an unhandled error
    carries it in its body and its ``X-Request-Id`` like every other response."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self.log = logging.getLogger("api.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(rid)
        state = scope.setdefault("state", {})
        state["request_id"] = rid  # for work outside this task (the MCP tools)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        root = tracing.start(  # the root span (or a child of the caller's traceparent)
            "HTTP " + method_label(scope["method"]),
            context=tracing.extract_headers(scope["headers"]),
            rag_request_id=rid,
        )
        tracing.set_attrs(root, **{"http.request.method": method_label(scope["method"])})
        try:
            with tracing.current(root):
                state["trace_context"] = tracing.context_of(root)
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            if root.is_recording():
                root.update_name(f"{method_label(scope['method'])} {route}")
                tracing.set_attrs(
                    root, **{"http.route": route, "http.response.status_code": status["code"]}
                )
                root.end()
            self.metrics.requests.labels(
                route, method_label(scope["method"]), str(status["code"])
            ).observe(elapsed)
            if route not in ("/healthz", "/metrics"):
                self.log.info(
                    "%s %s %s %.1f ms", scope["method"], route, status["code"], elapsed * 1000
                )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """413 for bodies over the limit, by Content-Length or while streaming in."""

    def __init__(
        self,
        app: Any,
        default_limit: int,
        upload_limit: int,
        upload_paths: tuple[str, ...] = ("/v1/documents",),
    ) -> None:
        self.app, self.default_limit, self.upload_limit = app, default_limit, upload_limit
        self.upload_paths = upload_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.upload_limit
            if scope["method"] == "POST" and scope["path"] in self.upload_paths
            else self.default_limit
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reject(send, limit)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _reject(send, limit)


class _TooLarge(BaseException):
    """A BaseException on purpose: FastAPI turns any Exception raised while it parses a body
    into a 400, which would hide the size limit from the client."""


async def _reject(send: Any, limit: int) -> None:
    body = json.dumps(
        {"error": {"code": "too_large", "message": f"request body over the {limit:,}-byte limit"}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
