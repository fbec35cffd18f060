"""The MCP server at /mcp, driven by the official ``mcp`` client over Streamable HTTP against
the API served by uvicorn: the real store (the shared ingested corpus), and for ``ask`` the
real vLLM (one call: slow on CPU)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from tests.api.conftest import api_for

KEY = "mcp-test-key"
TOOLS = {"search", "ask", "fetch_document", "fetch_parent", "list_documents"}


@pytest.fixture(scope="module")
def mcp_url(ingested, embedder, fault_server) -> Iterator[str]:
    """The API (no keys) with a fake LLM: everything but ``ask``."""
    base, _ = fault_server
    with api_for(ingested, embedder, f"{base}/ok/v1", model="fake") as url:
        yield f"{url}/mcp"


@pytest.fixture(scope="module")
def keyed_url(ingested, embedder, fault_server) -> Iterator[str]:
    base, _ = fault_server
    with api_for(
        ingested, embedder, f"{base}/ok/v1", model="fake", api_keys=[SecretStr(KEY)]
    ) as url:
        yield f"{url}/mcp"


async def _session_call(url: str, headers: dict[str, str] | None, work: Any) -> Any:
    timeout = httpx2.Timeout(30.0, read=300.0)  # as the README's snippet
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)


def run(url: str, work: Any, headers: dict[str, str] | None = None) -> Any:
    return asyncio.run(_session_call(url, headers, work))


def payload(result: Any) -> dict[str, Any]:
    assert result.content and result.content[0].type == "text"
    body = json.loads(result.content[0].text)
    if result.structured_content is not None:
        assert result.structured_content == body
    return body


def test_lists_the_tools_with_schemas(mcp_url):
    listed = run(mcp_url, lambda s: s.list_tools())
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40
        assert tool.input_schema["type"] == "object"
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert {"query", "top_k", "filters", "collection", "max_chars"} <= set(search["properties"])
    assert tools["ask"].input_schema["required"] == ["question"]
    assert "history" in tools["ask"].input_schema["properties"]


def test_search_fetch_and_list_against_the_real_store(mcp_url):
    async def work(session: ClientSession) -> tuple[Any, ...]:
        found = payload(await session.call_tool("search", {"query": "Quillon valve", "top_k": 3}))
        first = found["results"][0]
        parent = payload(
            await session.call_tool(
                "fetch_parent", {"parent_id": first["parent_id"], "max_chars": 300}
            )
        )
        document = payload(
            await session.call_tool(
                "fetch_document", {"document_id": first["document_id"], "max_chars": 200}
            )
        )
        listed = payload(await session.call_tool("list_documents", {"limit": 2}))
        return found, parent, document, listed

    found, parent, document, listed = run(mcp_url, work)
    assert 1 <= len(found["results"]) <= 3 and found["truncated"] is False
    first = found["results"][0]
    assert first["source"].endswith("valves.pdf") and first["pages"]
    assert "Quillon" in first["snippet"] and first["rank"] == 1
    assert parent["parent_id"] == first["parent_id"] and "Quillon" in parent["text"]
    assert len(parent["text"]) <= 300
    assert document["document_id"] == first["document_id"]
    assert len(document["text"]) <= 200
    if document["truncated"]:
        assert document["text"].endswith("[truncated]") and document["next_offset"] > 0
    assert len(listed["documents"]) == 2 and listed["total"] >= 2
    assert listed["next_offset"] == 2


def test_output_bounded_by_max_chars(mcp_url):
    async def work(session: ClientSession) -> Any:
        return await session.call_tool("search", {"query": "valve", "top_k": 10, "max_chars": 600})

    result = run(mcp_url, work)
    assert not result.is_error
    assert len(result.content[0].text) <= 600
    assert payload(result)["truncated"] is True


def test_bad_arguments_are_tool_errors_with_the_rest_codes(mcp_url):
    async def work(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("search", {"query": "valve", "top_k": 1000}),
            await session.call_tool("search", {"query": "valve", "nonsense": 1}),
            await session.call_tool("fetch_parent", {"parent_id": "not-a-uuid"}),
            await session.call_tool(
                "fetch_document", {"document_id": "00000000-0000-0000-0000-000000000000"}
            ),
            await session.call_tool("no_such_tool", {}),
        ]

    too_many, unknown_arg, bad_id, missing, no_tool = run(mcp_url, work)
    for result in (too_many, unknown_arg, bad_id, missing, no_tool):
        assert result.is_error
        text = result.content[0].text
        assert "Traceback" not in text and "http://" not in text
    error = payload(too_many)["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith("top_k:")
    assert payload(unknown_arg)["error"]["code"] == "invalid_request"
    assert "nonsense" in payload(unknown_arg)["error"]["message"]
    assert payload(bad_id)["error"] == {
        "code": "invalid_request",
        "message": "parent id must be a UUID, got 'not-a-uuid'",
        "status": 422,
    }
    assert payload(missing)["error"]["code"] == "not_found"
    assert payload(no_tool)["error"]["code"] == "not_found"


def test_two_clients_at_once(mcp_url):
    async def one(query: str) -> dict[str, Any]:
        async def work(session: ClientSession) -> dict[str, Any]:
            return payload(await session.call_tool("search", {"query": query, "top_k": 2}))

        return await _session_call(mcp_url, None, work)

    async def both() -> list[dict[str, Any]]:
        return list(await asyncio.gather(one("Quillon valve inventor"), one("valve maintenance")))

    first, second = asyncio.run(both())
    assert first["query"] == "Quillon valve inventor" and first["results"]
    assert second["query"] == "valve maintenance" and second["results"]


def test_401_without_a_key_when_keys_are_configured(keyed_url):
    response = httpx.post(
        keyed_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Accept": "application/json, text/event-stream"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    try:  # the official client fails on the 401 too (how it says so is its business)
        run(keyed_url, lambda s: s.list_tools())
    except BaseException as exc:  # an exception group, or the HTTP status error
        print("without a key the client raised", type(exc).__name__)
    else:
        pytest.fail("the client connected without a key")
    listed = run(keyed_url, lambda s: s.list_tools(), {"Authorization": f"Bearer {KEY}"})
    assert {t.name for t in listed.tools} == TOOLS


def test_rate_limited_per_principal(ingested, embedder, fault_server):
    base, _ = fault_server
    with api_for(ingested, embedder, f"{base}/ok/v1", model="fake", mcp_calls_per_minute=2) as url:

        async def work(session: ClientSession) -> list[Any]:
            return [await session.call_tool("list_documents", {}) for _ in range(3)]

        results = run(f"{url}/mcp", work)
    assert [r.is_error for r in results] == [False, False, True]
    error = payload(results[2])["error"]
    assert error["code"] == "rate_limited" and error["status"] == 429


@pytest.mark.llm
def test_ask_with_progress_against_the_real_vllm(ingested, embedder, vllm):
    with api_for(ingested, embedder, vllm) as url:
        progress: list[tuple[float, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, message))

        async def work(session: ClientSession) -> Any:
            return await session.call_tool(
                "ask",
                {"question": "Who invented the Quillon valve?", "max_chars": 4000},
                progress_callback=on_progress,
            )

        result = run(f"{url}/mcp", work)
    assert not result.is_error, result.content[0].text
    body = payload(result)
    assert body["answer"] and body["sources"] and body["reason"] is None
    assert any(s["source"].endswith("valves.pdf") for s in body["sources"])
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert len(result.content[0].text) <= 4000
    messages = [m or "" for _, m in progress]
    assert messages[0] == "searching"
    assert any(m.startswith("retrieved") for m in messages)
    assert messages[-1] == "done"
    values = [v for v, _ in progress]
    assert values == sorted(values)


def test_tool_call_spans_join_the_http_request_trace(mcp_url):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from rag import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        run(mcp_url, lambda s: s.call_tool("search", {"query": "Quillon valve", "top_k": 1}))
    finally:
        tracing.use(None)
    for _ in range(100):  # the request's span ends once the server finished its response
        finished = exporter.get_finished_spans()
        tool = next(s for s in finished if s.name == "mcp.tool")
        http = {s.context.span_id: s for s in finished if s.name == "POST /mcp"}
        if tool.parent is not None and tool.parent.span_id in http:
            break
        time.sleep(0.05)
    assert tool.parent is not None and tool.parent.span_id in http
    assert tool.attributes["rag.tool"] == "search"
    retrieve = next(s for s in finished if s.name == "rag.retrieve")
    assert retrieve.context.trace_id == tool.context.trace_id
    assert http[tool.parent.span_id].attributes["rag.request_id"]
