"""Spans of a query (``rag.tracing``), collected with the SDK's in-memory exporter: the tree
through ``RagPipeline`` over the real embedder and store (and the real vLLM for the generate
step), their attributes, the request id on the HTTP root span, no text unless asked, and
nothing at all when tracing is off."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rag import tracing
from rag.access import ReadScope
from rag.answer.events import AnswerRequest, FinalEvent
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline

QUESTION = "Who invented the Quillon valve?"


@pytest.fixture
def spans(request) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider, trace_text=getattr(request, "param", False))
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def children(finished: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    ids = parent.get_span_context().span_id
    return [
        s.name
        for s in sorted(finished, key=lambda s: s.start_time or 0)
        if s.parent and s.parent.span_id == ids
    ]


def texts(finished: tuple[ReadableSpan, ...]) -> list[str]:
    return [str(v) for s in finished for v in (s.attributes or {}).values()]


def test_search_spans_and_attributes(spans, ingested, embedder):
    pipeline = RagPipeline(ingested["settings"], embedder, ingested["store"])
    hits = pipeline.search("Quillon valve", top_k=3, scope=ReadScope.everything())
    finished = spans.get_finished_spans()
    named = by_name(finished)
    retrieve = named["rag.retrieve"]
    assert retrieve.parent is None
    # the first search, then the follow-up hop (rag.answer.hops) with its own embed + search
    assert children(finished, retrieve) == ["rag.embed", "rag.search", "rag.hop"]
    hop = named["rag.hop"]
    assert children(finished, hop) == ["rag.embed", "rag.search"]
    assert hop.attributes["rag.hits"] == len(hits)
    assert retrieve.attributes["rag.hits"] == len(hits) > 0
    assert retrieve.attributes["rag.top_k"] == 3
    assert retrieve.attributes["rag.parent_tokens"] == sum(h.tokens for h in hits)
    assert named["rag.search"].attributes["rag.hits"] >= len(hits)
    assert named["rag.embed"].attributes["rag.dense"] is True
    assert named["rag.embed"].attributes["rag.terms"] > 0
    for span in finished:
        assert span.end_time and span.start_time and span.end_time >= span.start_time
    assert not any("Quillon" in t for t in texts(finished))  # no text by default


@pytest.mark.parametrize("spans", [True], indirect=True)
def test_text_only_when_asked(spans, ingested, embedder):
    pipeline = RagPipeline(ingested["settings"], embedder, ingested["store"])
    pipeline.search("Quillon valve", top_k=1, scope=ReadScope.everything())
    assert by_name(spans.get_finished_spans())["rag.retrieve"].attributes["rag.query"] == (
        "Quillon valve"
    )


def test_nothing_recorded_when_off(ingested, embedder):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(None)
    pipeline = RagPipeline(ingested["settings"], embedder, ingested["store"])
    assert pipeline.search("Quillon valve", top_k=1, scope=ReadScope.everything())
    with tracing.span("anything", rag_x=1) as span:
        assert not span.is_recording()
    assert tracing.start("x") is tracing.INVALID_SPAN
    assert tracing.inject({}) == {} and tracing.extract({"traceparent": "00-x"}) is None
    assert tracing.log_fields() == {}
    assert exporter.get_finished_spans() == ()


def test_setup_only_with_the_otlp_variables(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.setup("test") is False and not tracing.enabled()
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing.wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    )


def test_request_id_on_the_http_root_span(spans, ingested, embedder, fault_server):
    from tests.api.conftest import api_for

    base, _ = fault_server
    with api_for(ingested, embedder, f"{base}/ok/v1", model="fake") as url:
        response = httpx.post(
            f"{url}/v1/search",
            json={"query": "Quillon valve", "top_k": 2},
            headers={"X-Request-Id": "trace-me-1"},
        )
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "POST /v1/search")
    assert root.parent is None
    assert root.attributes["rag.request_id"] == "trace-me-1"
    assert root.attributes["http.response.status_code"] == 200
    retrieve = by_name(finished)["rag.retrieve"]
    assert retrieve.context.trace_id == root.context.trace_id
    assert retrieve.parent is not None


def test_incoming_traceparent_is_continued(spans, ingested, embedder, fault_server):
    from tests.api.conftest import api_for

    base, _ = fault_server
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with api_for(ingested, embedder, f"{base}/ok/v1", model="fake") as url:
        httpx.get(f"{url}/healthz", headers={"traceparent": parent})
    root = next(s for s in spans.get_finished_spans() if s.name.startswith("GET"))
    assert format(root.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.llm
def test_answer_span_tree_with_the_real_vllm(spans, ingested, embedder, vllm):
    settings = ingested["settings"].model_copy(
        update={
            "llm_base_url": vllm,
            "llm_model": "smollm2-135m-instruct",
            "llm_tokenizer": "server",
            "target_fill_tokens": 1500,
            "default_max_tokens": 32,
            "llm_first_token_timeout": 90.0,
            "llm_total_timeout": 120.0,
        }
    )

    async def go() -> FinalEvent:
        llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=2.0))
        try:
            pipeline = RagPipeline(settings, embedder, ingested["store"], llm)
            await pipeline.model.refresh()
            request = AnswerRequest(
                question=QUESTION, scope=ReadScope.everything(), request_id="rid-42"
            )
            final = None
            async for event in pipeline.answer(request):
                if isinstance(event, FinalEvent):
                    final = event
            assert final is not None
            return final
        finally:
            await llm.close()

    final = asyncio.run(go())
    finished = spans.get_finished_spans()
    named = by_name(finished)
    root = named["rag.answer"]
    assert root.parent is None
    assert children(finished, root) == [
        "rag.rewrite",
        "rag.retrieve",
        "rag.pack",
        "rag.generate",
        "rag.cite",
    ]
    assert children(finished, named["rag.retrieve"])[:1] == ["rag.embed"]
    assert "rag.search" in children(finished, named["rag.retrieve"])
    assert root.attributes["rag.request_id"] == "rid-42"
    assert root.attributes["rag.completion_tokens"] == final.usage.completion_tokens > 0
    pack = named["rag.pack"].attributes
    assert pack["rag.prompt_tokens"] == final.usage.prompt_tokens
    assert pack["rag.budget_window"] == final.usage.context_window
    assert pack["rag.sources"] == len(final.sources) > 0
    generate = named["rag.generate"].attributes
    assert 0 < generate["rag.first_token_s"] <= generate["rag.seconds"]
    assert generate["rag.completion_tokens"] == final.usage.completion_tokens
    assert named["rag.cite"].attributes["rag.citations"] == len(final.check.citations)
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    assert not any("Quillon" in t for t in texts(finished))
    print("span tree:", {s.name: children(finished, s) for s in finished if children(finished, s)})
