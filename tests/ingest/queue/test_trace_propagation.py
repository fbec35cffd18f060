"""The trace crosses the ingestion queue: the producer writes the W3C trace context into
each task's headers (a real Redis broker holds the message), and the real Celery task,
run with those headers, continues that trace (its indexer spans included)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.app.task import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest.indexer import Indexer
from ingest.queue import tasks
from ingest.queue.app import INGEST_TASK, make_celery, redis_prefix
from ingest.queue.job_board import JobBoard
from ingest.queue.producer import Producer
from rag import tracing
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.helpers.queue import as_settings, queue_settings


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def queued_headers(url: str, queue: str) -> list[dict]:
    """The headers of the task messages waiting in Redis (kombu's list per queue)."""
    client = redis.Redis.from_url(url)
    try:
        keys = [k for k in client.keys("*") if k.decode().endswith(queue)]
        found = []
        for key in keys:
            if client.type(key) == b"list":
                found += [json.loads(raw)["headers"] for raw in client.lrange(key, 0, -1)]
        return found
    finally:
        client.close()


def queued_body(url: str, settings: Settings) -> str:
    client = redis.Redis.from_url(url)
    try:
        for key in client.keys("*"):
            if client.type(key) == b"list" and key.decode().endswith(settings.queue_name):
                return json.loads(client.lrange(key, 0, 0)[0])["body"]
    finally:
        client.close()
    raise AssertionError("no queued task")


def test_producer_context_reaches_the_task(spans, redis_server, tmp_path: Path, embedder):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note.md").write_text("# Traced\n\nThe Quillon valve crosses queues.\n")
    settings = as_settings(queue_settings(tmp_path, redis_server, shared))
    producer = Producer(settings)
    try:
        with tracing.span("request") as request_span:
            job = producer.submit([shared])
    finally:
        producer.close()
    assert job.job_id
    trace_id = format(request_span.get_span_context().trace_id, "032x")

    headers = queued_headers(redis_server.url, settings.queue_name)
    assert headers and all(h["task"] == INGEST_TASK for h in headers)
    traceparent = headers[0]["traceparent"]
    assert traceparent.split("-")[1] == trace_id
    # What a protocol-2 worker makes of the message: the headers on the request itself.
    assert tasks.trace_headers(Context(headers[0]))["traceparent"] == traceparent

    # The real Celery task object, run with the message's arguments and headers (eager:
    # they land under ``request.headers``), continues the producer's trace.
    args, kwargs, _ = json.loads(base64.b64decode(queued_body(redis_server.url, settings)))
    app = make_celery(settings)
    tasks.register(app)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    board = JobBoard.connect(settings.broker_url or "", redis_prefix(settings.collection))
    tasks.install(tasks.TaskContext(settings, Indexer(settings, embedder, store), board, None))
    spans.clear()
    try:
        outcome = (
            app.tasks[INGEST_TASK]
            .apply(args=args, kwargs=kwargs, headers={"traceparent": traceparent})
            .get()
        )
    finally:
        tasks._context = None
        store.close()
    assert outcome.get("done") == 1, outcome
    finished = spans.get_finished_spans()
    task_span = next(s for s in finished if s.name == "ingest.task")
    assert format(task_span.context.trace_id, "032x") == trace_id
    assert task_span.parent is not None
    assert task_span.parent.span_id == int(traceparent.split("-")[2], 16)
    names = {s.name for s in finished if format(s.context.trace_id, "032x") == trace_id}
    assert {"ingest.task", "ingest.run", "ingest.walk", "ingest.file", "ingest.parse"} <= names
    assert {"ingest.chunk", "ingest.embed", "ingest.store"} <= names
