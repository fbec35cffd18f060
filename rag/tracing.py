"""OpenTelemetry traces: one tracer for the service, off unless asked for.

``setup`` (the API's lifespan, an ingest worker's start) exports spans over OTLP/HTTP only
when the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED`` and the
exporter's own variables are honoured as the SDK reads them). Otherwise nothing is set up and
``span`` costs one flag test: it yields a shared non-recording span, records nothing and
creates no objects.

Spans carry counts, ids and timings, never document or question text, unless
``RAG_TRACE_TEXT=true`` (``text`` returns None otherwise, and ``span`` drops None values).

Trace context crosses process boundaries with the W3C headers (``inject``/``extract``:
the ingestion queue's task headers, an HTTP request's ``traceparent``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

log = logging.getLogger(__name__)

__all__ = ["INVALID_SPAN", "Span", "current", "failed", "set_attrs", "span", "start", "text"]

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]

_tracer: trace.Tracer | None = None  # None: tracing is off
_trace_text = False
_provider: Any = None  # the SDK provider setup() made (flushed and shut down by shutdown())


def enabled() -> bool:
    return _tracer is not None


def use(provider: trace.TracerProvider | None, *, trace_text: bool = False) -> None:
    """Record spans with ``provider`` (None: off). Tests pass an SDK provider with an
    in-memory exporter; ``setup`` passes the OTLP one."""
    global _tracer, _trace_text
    _tracer = provider.get_tracer("rag") if provider is not None else None
    _trace_text = trace_text and provider is not None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for exported traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(service_name: str, *, trace_text: bool = False) -> bool:
    """Export spans over OTLP/HTTP when the environment asks for it (see the module notes);
    True when tracing is now on. Idempotent: a second call keeps the first provider."""
    global _provider
    if _provider is not None:
        return True
    if not wanted():  # (a provider that tests installed with ``use`` stays)
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider = provider
    # Global too, so libraries that trace through the API (the MCP SDK) join the same traces.
    trace.set_tracer_provider(provider)
    use(provider, trace_text=trace_text)
    log.info("tracing: exporting spans over OTLP as %s", resource.attributes[SERVICE_NAME])
    return True


def shutdown() -> None:
    """Flush what is buffered and stop exporting (the process is stopping)."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        use(None)
        provider.shutdown()


def text(value: str | None) -> str | None:
    """``value`` where span attributes may hold text (``RAG_TRACE_TEXT``), else None."""
    return value if _trace_text else None


def _clean(attrs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [str(v) for v in value]  # one type per list, as OTLP wants
        else:
            out[key] = str(value)
    return out


@contextmanager
def span(name: str, *, parent: Span | None = None, **attrs: Any) -> Iterator[Span]:
    """A span named ``name``, current in the block: a child of ``parent`` or else of the
    current span, with ``attrs`` (None values left out; a leading ``rag_`` is written
    ``rag.``: ``rag_hits`` is ``rag.hits``). Off: the shared non-recording span, nothing
    else.

    An exception leaving the block marks the span as an error (its type, never its
    message: messages can hold text)."""
    tracer = _tracer
    if tracer is None:
        yield INVALID_SPAN
        return
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    with tracer.start_as_current_span(
        name,
        context=ctx,
        attributes=_clean(_named(attrs)),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            failed(current, exc)
            raise


def start(
    name: str,
    *,
    parent: Span | None = None,
    context: otel_context.Context | None = None,
    **attrs: Any,
) -> Span:
    """A span that is not made current (it outlives a block: an async generator's, across
    its yields); the caller ends it. A child of ``parent``, else of ``context``, else of the
    current span. Off: the shared non-recording span."""
    tracer = _tracer
    if tracer is None:
        return INVALID_SPAN
    ctx = trace.set_span_in_context(parent) if parent is not None else context
    return tracer.start_span(name, context=ctx, attributes=_clean(_named(attrs)))


def context_of(target: Span) -> otel_context.Context | None:
    """A context whose current span is ``target`` (to continue its trace in another task);
    None when it records nothing."""
    return trace.set_span_in_context(target) if target.is_recording() else None


def extract_headers(headers: list[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The W3C trace context of an ASGI request's headers (``traceparent``), or None."""
    if _tracer is None:
        return None
    found = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in headers
        if k in (b"traceparent", b"tracestate")
    }
    return extract(found)


@contextmanager
def current(target: Span) -> Iterator[None]:
    """``target`` as the current span in the block (not ended after it)."""
    if _tracer is None or not target.is_recording():
        yield
        return
    with trace.use_span(target, end_on_exit=False, record_exception=False):
        yield


def failed(target: Span, exc: BaseException) -> None:
    """Mark ``target`` as failed by ``exc`` (its type: messages can hold text)."""
    if target.is_recording():
        target.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        target.set_attribute("error.type", type(exc).__qualname__)


def _named(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {_attr_name(k): v for k, v in attrs.items()}


def _attr_name(key: str) -> str:
    return "rag." + key[4:] if key.startswith("rag_") else key


def set_attrs(target: Span, **attrs: Any) -> None:
    """Attributes added once known (None values left out); nothing when not recording."""
    if target.is_recording():
        target.set_attributes(_clean(_named(attrs)))


def current_span() -> Span:
    return trace.get_current_span() if _tracer is not None else INVALID_SPAN


def log_fields() -> dict[str, str]:
    """The current trace and span ids for a log line ({} when off or outside a span)."""
    if _tracer is None:
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


# --- across processes ------------------------------------------------------------------------
def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """The current trace context written into ``carrier`` (W3C ``traceparent``; nothing when
    tracing is off or there is no current span)."""
    if _tracer is not None:
        propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The trace context ``carrier`` holds, or None (off, or nothing there)."""
    if _tracer is None or not carrier:
        return None
    strings = {k: v for k, v in carrier.items() if isinstance(v, str)}
    if "traceparent" not in strings:
        return None
    return propagate.extract(strings)


@contextmanager
def attached(ctx: otel_context.Context | None) -> Iterator[None]:
    """Run the block with ``ctx`` as the current trace context (nothing when None)."""
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
