"""/v1/chat/completions refuses what it cannot honour, in OpenAI's 400 shape with the field
named (issue 21): nothing is accepted and then silently ignored or dropped. No LLM listens:
every refusal comes before it would be asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import api_without_llm

QUESTION = "Where was the Zorblax reactor built?"
USER = {"role": "user", "content": QUESTION}


@pytest.fixture(scope="module")
def api(ingested, embedder) -> Iterator[str]:
    with api_without_llm(ingested, embedder, context_window=8192) as url:
        yield url


def chat(api: str, **body: Any) -> httpx.Response:
    body.setdefault("messages", [USER])
    return httpx.post(f"{api}/v1/chat/completions", json={"model": "rag", **body}, timeout=60)


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [TOOL]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "lookup"}}}, "tool_choice"),
        ({"functions": [TOOL["function"]]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"n": 0}, "n"),
    ],
)
def test_unsupported_parameters_are_a_400_naming_the_field(api, extra, param):
    r = chat(api, **extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["code"] == "unsupported_parameter" and "not supported" in error["message"]


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": []},
        {"tool_choice": "none"},
        {"response_format": {"type": "text"}},
        {"logprobs": False},
        {"n": 1},
    ],
)
def test_their_neutral_values_are_accepted(api, extra):
    assert chat(api, **extra).status_code == 503  # reached the (absent) LLM


@pytest.mark.parametrize("last", ["assistant", "system", "developer"])
def test_a_trailing_message_that_is_not_the_question_is_refused(api, last):
    r = chat(api, messages=[USER, {"role": last, "content": "It was built in"}])
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "messages" and repr(last) in error["message"]


@pytest.mark.parametrize("blank", ["\u200b\u200b", "\u00ad", "\u2060 \ufeff", "\u3164", "\u2800"])
def test_an_invisible_question_is_refused_on_both_routes(api, blank):
    r = chat(api, messages=[{"role": "user", "content": blank}])
    assert r.status_code == 400 and "visible text" in r.json()["error"]["message"]
    r = httpx.post(f"{api}/v1/query", json={"question": blank}, timeout=60)
    assert r.status_code == 422 and "visible text" in r.json()["error"]["message"]


def test_a_system_message_cannot_take_the_sources_room(api):
    """~7,000 words of the client's own system text in an 8K window: a 413 with the limit,
    never a prompt without the sources (the absent LLM is not asked: no 503)."""
    system = {"role": "system", "content": "Be concise and helpful always. " * 1400}
    r = chat(api, messages=[system, USER])
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "reserved for sources" in error["message"]
