"""The context budget: window, reserved headroom and packing, in one place.

Invariant, for every request: ``prompt_tokens + max_tokens <= window - margin``, where the
prompt is counted exactly as the server will see it (chat template included). The margin
(default 10% of the window) is never handed to sources; it absorbs what no count can know
in advance (a server-side template change, a tokenizer update).

Packing picks parents by relevance until a target fill (32K by default: long-context models
answer best well below their maximum) or the hard cap, then shows them in document order
(order-preserving RAG), because a model reads a document's sections best in their order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.chunking import sentence_spans
from rag.documents import Hit
from rag.tokens import count_tokens

#: Below this many tokens a truncated source is more noise than help: skip it instead.
MIN_PARTIAL_TOKENS = 128


class BudgetError(ValueError):
    """The request cannot fit the window even without sources; carries the numbers."""

    def __init__(self, message: str, numbers: dict[str, int]) -> None:
        super().__init__(message)
        self.numbers = numbers


@dataclass(frozen=True)
class Budget:
    window: int
    max_tokens: int
    margin: int
    target_fill: int

    @classmethod
    def for_request(cls, configured_window: int, served_window: int | None, max_tokens: int,
                    margin_ratio: float, target_fill: int) -> Budget:
        window = min(configured_window, served_window or configured_window)
        return cls(window=window, max_tokens=max_tokens,
                   margin=math.ceil(window * margin_ratio), target_fill=target_fill)

    @property
    def prompt_limit(self) -> int:
        """The most prompt tokens allowed: window minus answer tokens minus margin."""
        return self.window - self.margin - self.max_tokens

    @property
    def headroom(self) -> int:
        return self.max_tokens + self.margin


@dataclass
class Source:
    """A parent chosen for the prompt, possibly cut at a sentence boundary."""

    hit: Hit
    rank: int
    text: str
    truncated: bool
    n: int = 0  # the [n] label, assigned after ordering


def cut_to_tokens(text: str, limit: int, count: Callable[[str], int] = count_tokens) -> str:
    """The longest prefix of whole sentences within ``limit`` tokens ('' if none fits)."""
    if count(text) <= limit:
        return text
    spans = sentence_spans(text)
    lo, hi = 0, len(spans)
    while lo < hi:  # binary search on the number of sentences kept
        mid = (lo + hi + 1) // 2
        if count(text[: spans[mid - 1][1]]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[: spans[lo - 1][1]].rstrip() if lo else ""


def choose_sources(
    hits: Sequence[Hit],
    available: int,
    block_cost: Callable[[Hit, str], int],
    scale: float = 1.0,
) -> list[Source]:
    """Greedy by relevance: whole parents while they fit, then one sentence-cut remainder.

    ``block_cost`` is the estimated token cost of a source block (label and text); ``scale``
    converts estimates into the server tokenizer's units (1.0 for Llama 3.1 itself).
    """
    chosen: list[Source] = []
    left = available
    for rank, hit in enumerate(hits):
        cost = math.ceil(block_cost(hit, hit.text) * scale)
        if cost <= left:
            chosen.append(Source(hit, rank, hit.text, truncated=False))
            left -= cost
            continue
        overhead = math.ceil(block_cost(hit, "") * scale)
        room = int((left - overhead) / scale)
        if room >= MIN_PARTIAL_TOKENS:
            text = cut_to_tokens(hit.text, room)
            if text:
                chosen.append(Source(hit, rank, text, truncated=True))
                left -= math.ceil(block_cost(hit, text) * scale)
    return chosen


def document_order(sources: list[Source]) -> list[Source]:
    """Documents by their best rank, parents within a document by position; label [n]."""
    best: dict[str, int] = {}
    for s in sources:
        best[s.hit.document_id] = min(best.get(s.hit.document_id, s.rank), s.rank)
    ordered = sorted(sources, key=lambda s: (best[s.hit.document_id], s.hit.start))
    for n, source in enumerate(ordered, start=1):
        source.n = n
    return ordered
