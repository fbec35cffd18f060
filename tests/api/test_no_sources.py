"""No sources, no LLM call: nothing matched, or the budget left room for none (issue 21).

Both routes answer at once, with a machine-readable reason, even when the LLM is down."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from api.deps import Services
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.api.conftest import api_for
from tests.helpers.servers import serve


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def empty_api(tmp_path_factory, embedder) -> Iterator[str]:
    """An empty store, and an LLM URL where nothing listens."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("empty"),
        llm_base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        llm_tokenizer="llama3",
        llm_retries=0,
    )
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=1.0))
    services = Services(
        settings=settings,
        pipeline=RagPipeline(settings, embedder, store, llm),
        store=store,
        llm=llm,
        jobs=None,
    )
    with serve(create_app(settings, services=services)) as url:
        yield url
    store.close()


@pytest.fixture(scope="module")
def fake_api(ingested, embedder, fault_server) -> Iterator[str]:
    base, _ = fault_server
    with api_for(ingested, embedder, f"{base}/ok/v1", model="fake") as url:
        yield url


def _chat(url: str, **extra: object) -> httpx.Response:
    body = {"model": "rag", "messages": [{"role": "user", "content": "Zorblax?"}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_nothing_matched_llm_down_native(empty_api):
    r = httpx.post(f"{empty_api}/v1/query", json={"question": "Zorblax?"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["reason"] == "no_matching_documents"


def test_nothing_matched_llm_down_chat(empty_api):
    r = _chat(empty_api)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["rag"]["reason"] == "no_matching_documents"
    assert body["choices"][0]["message"]["content"]


def test_nothing_matched_llm_down_chat_stream(empty_api):
    r = _chat(empty_api, stream=True)
    assert r.status_code == 200, r.text
    chunks = [
        json.loads(line[6:])
        for line in r.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    assert any((c.get("rag") or {}).get("reason") == "no_matching_documents" for c in chunks)
    assert r.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("limit", [1, 50])
def test_no_room_for_sources_is_not_sent_to_the_llm(fake_api, limit):
    r = httpx.post(
        f"{fake_api}/v1/query",
        json={"question": "Where was the Zorblax reactor built?", "max_context_tokens": limit},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    if not body["sources"]:  # sources that fit are answered from; none: no LLM call
        assert body["reason"] == "no_room_for_sources" and body["usage"]["prompt_tokens"] == 0
    else:
        assert limit > 1 and body["reason"] is None
