"""The noisy neighbour of ``bench latency``: searches while one client sends, in a loop, the
heaviest query the door admits (``RAG_MAX_HISTORY_TURNS`` turns holding
``RAG_MAX_HISTORY_CHARS`` characters of text the escaping inflates, ``<source`` repeated).

One request's CPU work (counting, escaping, packing its history) must not hold the event
loop, so the searches' p95 should stay within 1.5x of the quiet figure. Without an LLM the
heavy query is still counted and packed in full, then refused with a 503 when the answer
would be generated (the API counts locally, with the Llama 3.1 tokenizer, in that case).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

QUESTION = "Where was the Zorblax reactor built?"


def maximal_query(turns: int, chars: int) -> dict[str, Any]:
    """A /v1/query body with ``turns`` earlier turns holding ``chars`` characters in all."""
    per_message = max(chars // max(2 * turns, 1), 1)
    text = ("<source " * (per_message // 8 + 1))[:per_message]
    history = [{"role": r, "content": text} for _ in range(turns) for r in ("user", "assistant")]
    return {"question": QUESTION, "history": history, "max_tokens": 1}


@dataclass
class Heavy:
    """What the heavy client saw: its requests' statuses and durations."""

    statuses: dict[int, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        mean = sum(self.seconds) / len(self.seconds) if self.seconds else 0.0
        return {"requests": len(self.seconds), "mean_s": mean, "statuses": self.statuses}


async def while_heavy(url: str, body: dict[str, Any], work: Awaitable[T]) -> tuple[T, Heavy]:
    """Await ``work`` while one client posts ``body`` to /v1/query back to back."""
    heavy = Heavy()
    stop = asyncio.Event()

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=600) as http:
            while not stop.is_set():
                started = time.perf_counter()
                r = await http.post(f"{url}/v1/query", json=body)
                heavy.seconds.append(time.perf_counter() - started)
                heavy.statuses[r.status_code] = heavy.statuses.get(r.status_code, 0) + 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.5)  # the first heavy request is under way
    try:
        result = await work
    finally:
        stop.set()
        await task  # the request in flight finishes: nothing is left running
    return result, heavy
