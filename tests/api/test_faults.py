"""LLM failures map to clear statuses; retries happen only before any token."""

import json
import time

import httpx
import pytest

from tests.api.conftest import api_for


@pytest.fixture(scope="module")
def apis(ingested, embedder, fault_server):
    base, fs = fault_server
    urls = {}
    from contextlib import ExitStack

    with ExitStack() as stack:
        for mode in ("ok", "error500", "slow", "cut", "badjson", "drip"):
            urls[mode] = stack.enter_context(
                api_for(
                    ingested,
                    embedder,
                    f"{base}/{mode}/v1",
                    model="fake",
                    llm_first_token_timeout=4.0,
                )
            )
        yield urls, fs


QUESTION = "Where was the Zorblax reactor built?"


def ask(url, **extra):
    return httpx.post(f"{url}/v1/query", json={"question": QUESTION, **extra}, timeout=60)


def ask_streaming(url):
    """The same question as a server-sent event stream (a context manager, as httpx.stream)."""
    return httpx.stream("POST", f"{url}/v1/query", json={"question": QUESTION, "stream": True})


def test_fake_ok_parses_citations(apis):
    urls, _ = apis
    r = ask(urls["ok"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == "Hello world [1]."
    # Source 1 does not say "hello world": the model's [1] is reported, not shown as a
    # citation, and no source is marked cited.
    assert body["citations"] == [] and body["unsupported_citations"] == [1]
    assert not any(s["cited"] for s in body["sources"])
    assert body["usage"]["context_window"] == 4096  # discovered from /v1/models


def test_500s_are_retried_then_502(apis):
    urls, fs = apis
    before = fs.calls.get("error500", 0)
    r = ask(urls["error500"])
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_bad_response"
    assert fs.calls["error500"] - before == 3  # 1 try + 2 retries


def test_slow_first_token_is_504(apis):
    urls, _ = apis
    started = time.monotonic()
    r = ask(urls["slow"])
    assert r.status_code == 504 and r.json()["error"]["code"] == "llm_timeout"
    assert time.monotonic() - started < 20


def test_cut_stream_is_502_and_never_retried_after_tokens(apis):
    urls, fs = apis
    before = fs.calls.get("cut", 0)
    r = ask(urls["cut"])
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_bad_response"
    assert "127.0.0.1" not in r.text and "[DONE]" not in r.text  # details stay in the log
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert fs.calls["cut"] - before == 1


def test_cut_stream_when_streaming_sends_an_error_event(apis):
    urls, _ = apis
    with ask_streaming(urls["cut"]) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("event:")]
    assert (
        events[0] == "event: sources" and "event: error" in events and events[-1] == "event: done"
    )


def test_malformed_json_is_502(apis):
    urls, _ = apis
    r = ask(urls["badjson"])
    assert r.status_code == 502 and r.json()["error"]["code"] == "llm_bad_response"
    assert "JSON" not in r.json()["error"]["message"]


def test_streaming_ok_events(apis):
    urls, _ = apis
    with ask_streaming(urls["ok"]) as r:
        lines = list(r.iter_lines())
    kinds = [line.split(": ", 1)[1] for line in lines if line.startswith("event:")]
    assert kinds == ["sources", "delta", "delta", "final", "done"]
    final = json.loads([line for line in lines if line.startswith("data:")][-2][5:])
    assert final["answer"] == "Hello world [1]."


def test_client_disconnect_cancels_generation(apis):
    urls, fs = apis
    fs.disconnected.clear()
    with ask_streaming(urls["drip"]) as r:
        for line in r.iter_lines():
            if line.startswith("event: delta"):
                break  # leave after the first token
    assert fs.disconnected.wait(10), "the LLM stream was not closed after the client left"


def test_budget_413_with_numbers(apis):
    urls, _ = apis
    r = ask(urls["ok"], max_tokens=4000)  # window 4096 - margin 410 - 4000 < 0
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "context_too_large" and err["details"]["context_window"] == 4096


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "x", "max_tokens": 0},
        {"question": "x", "max_tokens": -5},
        {"question": "x", "temperature": 5},
        {"question": "x", "stream": "yes please"},
        {"question": "x", "max_context_tokens": 0},
        {"question": ["x"]},
        {"question": "x" * 9000},
    ],
)
def test_bad_query_requests(apis, body):
    urls, _ = apis
    r = httpx.post(f"{urls['ok']}/v1/query", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_max_tokens_over_limit(apis):
    urls, _ = apis
    r = ask(urls["ok"], max_tokens=100_000)
    assert r.status_code == 422 and "max_tokens" in r.json()["error"]["message"]


def test_every_kind_of_llm_failure_has_its_status():
    """``rag`` names the kind of failure; the API alone chooses the status."""
    from api.errors import llm_status
    from rag.answer.llm import LLMBadResponse, LLMError, LLMFailure, LLMTimeout, LLMUnavailable

    errors = [LLMUnavailable("x"), LLMTimeout("x"), LLMBadResponse("x"), LLMError("x")]
    assert [(e.code, llm_status(e)) for e in errors] == [
        (LLMFailure.unavailable, 503),
        (LLMFailure.timeout, 504),
        (LLMFailure.bad_response, 502),
        (LLMFailure.error, 502),
    ]
    assert not any(hasattr(e, "status") for e in errors)
