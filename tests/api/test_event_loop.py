"""One request's CPU work never holds the event loop (issue 21): while a query with a huge
history is counted, escaped and packed, /healthz still answers at once; and history beyond
the door's limits is refused before any of that work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import api_for, api_without_llm
from tests.helpers.servers import free_port

QUESTION = "Where was the Zorblax reactor built?"


def _history(turns: int, chars: int) -> list[dict[str, str]]:
    """A thread whose text the escaping inflates (``<source`` repeated)."""
    text = ("<source " * (chars // 8 + 1))[:chars]
    return [{"role": r, "content": text} for _ in range(turns) for r in ("user", "assistant")]


@pytest.fixture(scope="module")
def roomy(ingested, embedder) -> Iterator[str]:
    """Door limits raised far beyond the defaults (so the heavy request is admitted), local
    counting (the Llama 3.1 tokenizer in this process), no LLM listening."""
    with api_without_llm(
        ingested,
        embedder,
        max_history_turns=1000,
        max_history_chars=2_000_000,
        max_request_bytes=8_000_000,
    ) as url:
        yield url


@pytest.fixture(scope="module")
def default(ingested, embedder) -> Iterator[str]:
    with api_for(ingested, embedder, f"http://127.0.0.1:{free_port()}/v1") as url:
        yield url


def test_healthz_answers_while_a_huge_history_is_packed(roomy):
    body = {"question": QUESTION, "history": _history(1000, 40)}
    done: dict[str, float] = {}

    def heavy() -> None:
        started = time.perf_counter()
        done["status"] = httpx.post(f"{roomy}/v1/query", json=body, timeout=300).status_code
        done["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=heavy)
    thread.start()
    waits = []
    with httpx.Client(timeout=60) as client:
        while thread.is_alive() or not waits:
            started = time.perf_counter()
            assert client.get(f"{roomy}/healthz").status_code == 200
            waits.append(time.perf_counter() - started)
            time.sleep(0.02)
    thread.join()
    assert done["status"] in (200, 503), done  # packed, then the absent LLM
    assert max(waits) < 1.0, (max(waits), len(waits), done)


@pytest.mark.parametrize(
    ("history", "limit"),
    [(_history(201, 4), "at most 200 earlier turns"), (_history(2, 60_000), "at most 200000")],
)
def test_history_beyond_the_door_is_refused_with_the_limit(default, history, limit):
    started = time.perf_counter()
    native = httpx.post(
        f"{default}/v1/query", json={"question": QUESTION, "history": history}, timeout=60
    )
    assert native.status_code == 422 and limit in native.json()["error"]["message"]
    messages = [*history, {"role": "user", "content": QUESTION}]
    chat = httpx.post(
        f"{default}/v1/chat/completions", json={"model": "rag", "messages": messages}, timeout=60
    )
    assert chat.status_code == 400 and limit in chat.json()["error"]["message"]
    assert time.perf_counter() - started < 10  # refused before any counting
