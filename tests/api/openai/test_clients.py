"""The README's client snippets, run as written against the running API and the real vLLM:
LangChain's ``ChatOpenAI`` (which drops ``rag``: the sources reach it in the response
headers) and litellm (which keeps ``rag``); streamed and whole answers the same at T=0."""

import json
import re

import pytest

from tests.api.conftest import api_for
from tests.conftest import ROOT

pytestmark = pytest.mark.llm
QUESTION = "Where was the Zorblax reactor built?"
README_URL, README_KEY = "http://127.0.0.1:8080/v1", "<a key from RAG_API_KEYS>"


def snippet(name: str, url: str) -> str:
    """The README's ``<!-- snippet: name -->`` code block, pointed at ``url``."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", readme, re.S)
    assert found, f"README has no {name} snippet"
    return found.group(1).replace(README_URL, f"{url}/v1").replace(README_KEY, "no-key-needed")


def run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def url(ingested, embedder, vllm):
    with api_for(ingested, embedder, vllm) as base:
        yield base


def assert_reactor_sources(sources: list[dict]) -> None:
    assert sources and sources[0]["source"] == "reactor-update.eml"  # relative: no paths
    assert sources[0]["title"] and all(not s["source"].startswith("/") for s in sources)
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))


def test_langchain_snippet_reaches_the_sources_through_headers(url):
    found = run(snippet("langchain", url))
    reply = found["reply"]
    assert "Oslo" in reply.content
    assert "rag" not in reply.response_metadata  # what LangChain drops: hence the headers
    assert_reactor_sources(found["sources"])
    headers = reply.response_metadata["headers"]
    assert int(headers["x-rag-sources-count"]) >= len(found["sources"])
    assert headers["x-rag-request-id"] == headers["x-request-id"]


def test_langchain_stream_has_the_headers_and_the_same_answer(url):
    """The sources are chosen before the first token, so a stream carries them too; at
    temperature 0 the streamed answer is the whole one (a repeated sentence cut in both)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{url}/v1",
        api_key="no-key-needed",
        model="rag",
        temperature=0,
        max_tokens=96,
        include_response_headers=True,
    )
    chunks = list(llm.stream(QUESTION))
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed += chunk
    assert_reactor_sources(json.loads(chunks[0].response_metadata["headers"]["x-rag-sources"]))
    whole = llm.invoke(QUESTION)
    assert streamed.content.strip() == whole.content and "Oslo" in whole.content
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", whole.content) if s.strip()]
    assert len(sentences) == len(set(sentences))  # the 135M model said it twice before


def test_litellm_snippet_keeps_rag_and_the_headers(url, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the network
    found = run(snippet("litellm", url))
    reply = found["reply"]
    assert "Oslo" in reply.choices[0].message.content
    assert_reactor_sources(found["sources"])
    headers = reply._hidden_params["additional_headers"]
    listed = json.loads(headers["llm_provider-x-rag-sources"])
    assert [s["n"] for s in listed] == [s["n"] for s in found["sources"]][: len(listed)]
