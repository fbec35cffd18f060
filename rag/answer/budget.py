"""The context budget: window, reserved headroom, the invariant, and the sources that fill it.

Invariant, for every request: ``prompt_tokens + max_tokens <= window - margin``, where the
prompt is counted exactly as the server will see it (chat template included). The margin
(default 10% of the window) is never handed to sources; it absorbs what no count can know
in advance (a server-side template change, a tokenizer update). ``Budget`` holds the
arithmetic (``prompt_limit``, ``admits``, ``refuse_unfit``); the packer
(``rag.answer.packing``) counts the rendered prompt and asks it.

Sources are chosen here from estimates: parents by relevance until a target fill (32K by
default: long-context models answer best well below their maximum) or the hard cap, then
shown in document order (order-preserving RAG), because a model reads a document's sections
best in their order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.documents import Hit
from rag.text.chunking import sentence_spans
from rag.text.tokens import count_tokens

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
    min_context: int = 0  # tokens reserved for sources (RAG_MIN_CONTEXT_TOKENS), as asked

    @classmethod
    def for_request(
        cls,
        configured_window: int,
        served_window: int | None,
        max_tokens: int,
        margin_ratio: float,
        target_fill: int,
        min_context: int = 0,
    ) -> Budget:
        window = min(configured_window, served_window or configured_window)
        return cls(
            window=window,
            max_tokens=max_tokens,
            margin=math.ceil(window * margin_ratio),
            target_fill=target_fill,
            min_context=min_context,
        )

    @property
    def context_floor(self) -> int:
        """Prompt tokens kept for sources: the setting, at most half the prompt limit (and
        never more than the caller's own ``max_context_tokens``)."""
        return max(min(self.min_context, self.target_fill, self.prompt_limit // 2), 0)

    @property
    def prompt_limit(self) -> int:
        """The most prompt tokens allowed: window minus answer tokens minus margin."""
        return self.window - self.margin - self.max_tokens

    @property
    def headroom(self) -> int:
        return self.max_tokens + self.margin

    def admits(self, prompt_tokens: int) -> bool:
        """The invariant, for an exact count of the chat-templated prompt."""
        return prompt_tokens + self.max_tokens <= self.window - self.margin

    def available(self, base: int) -> int:
        """Tokens sources may take after a prompt of ``base`` tokens without them."""
        return min(self.prompt_limit - base, self.target_fill)

    def history_allowance(self, share: float, alone: int) -> int:
        """What earlier turns may add to a prompt of ``alone`` tokens (question only)."""
        room = self.prompt_limit - alone - self.context_floor
        return max(min(int(share * self.prompt_limit), room), 0)

    def numbers(self, base: int, question_tokens: int) -> dict[str, int]:
        """What a ``BudgetError`` reports."""
        return {
            "question_tokens": question_tokens,
            "prompt_tokens_without_sources": base,
            "max_tokens": self.max_tokens,
            "margin_tokens": self.margin,
            "context_window": self.window,
            "prompt_limit": self.prompt_limit,
            "min_context_tokens": self.context_floor,
        }

    def refuse_unfit(self, base: int, question_tokens: int) -> None:
        """Raise ``BudgetError`` when a prompt of ``base`` tokens (no sources) cannot fit."""
        if self.prompt_limit <= 0:
            raise BudgetError(
                f"max_tokens {self.max_tokens} plus the safety margin "
                f"{self.margin} leave no room in the {self.window}-token window",
                self.numbers(base, question_tokens),
            )
        limit = self.prompt_limit - self.context_floor
        if base > limit:
            raise BudgetError(
                f"the question and the client's own instructions need {base} prompt tokens "
                f"but at most {limit} fit (window {self.window} minus max_tokens "
                f"{self.max_tokens} minus margin {self.margin} minus "
                f"{self.context_floor} reserved for sources)",
                self.numbers(base, question_tokens),
            )


@dataclass
class Source:
    """A parent chosen for the prompt: whole, cut at a sentence, or as excerpts."""

    hit: Hit
    rank: int
    text: str
    truncated: bool
    n: int = 0  # the [n] label, assigned after ordering
    spans: list[tuple[int, int]] = field(default_factory=list)  # excerpts, parent-relative


EXCERPT_GAP = "\n[…]\n"


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


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def excerpt_text(hit: Hit, spans: list[tuple[int, int]]) -> str:
    return EXCERPT_GAP.join(hit.text[s:e].strip() for s, e in _merge(spans))


def choose_sources(
    hits: Sequence[Hit],
    available: int,
    block_cost: Callable[[Hit, str], int],
    scale: float = 1.0,
) -> list[Source]:
    """Fill ``available`` tokens with the most relevant text, coarse only when it fits.

    1. Excerpts first: matched passages, best score first across all parents, so a small
       budget holds the best passages of many parents rather than one whole parent.
    2. Then, in relevance order, excerpts grow into their whole parent where it fits: at
       long-context budgets the model reads complete sections.
    3. A parent that fits neither way may still enter cut at a sentence boundary.
    ``block_cost`` estimates a source block's tokens (label and text); ``scale`` converts
    estimates into the server tokenizer's units (1.0 for Llama 3.1 itself).
    """
    left = available
    picked: dict[int, list[tuple[int, int]]] = {}
    whole: set[int] = set()
    spent: dict[int, int] = {}  # estimated tokens each parent's block costs so far

    def cost(i: int, text: str) -> int:
        return math.ceil(block_cost(hits[i], text) * scale)

    def current(i: int) -> int:
        return spent.get(i, 0)

    candidates = sorted(
        ((p.score, -i, i, h.span(p)) for i, h in enumerate(hits) for p in h.passages),
        key=lambda c: (-c[0], -c[1]),
    )
    gap = math.ceil(count_tokens(EXCERPT_GAP) * scale)
    for _, _, i, (s, e) in candidates:
        # Incremental estimate (label once, then each passage and a gap marker); the exact
        # count of the finished prompt is checked by the caller.
        add = math.ceil(count_tokens(hits[i].text[s:e]) * scale) + gap
        if i not in picked:
            add += cost(i, "")
        if add <= left:
            picked.setdefault(i, []).append((s, e))
            spent[i] = current(i) + add
            left -= add
    for i in range(len(hits)):  # grow into whole parents, best first
        extra = cost(i, hits[i].text) - current(i)
        if extra <= left:
            whole.add(i)
            spent[i] = current(i) + extra
            left -= extra
    chosen: list[Source] = []
    for i, hit in enumerate(hits):
        if i in whole:
            chosen.append(Source(hit, i, hit.text, truncated=False))
        elif i in picked:
            spans = _merge(picked[i])
            chosen.append(Source(hit, i, excerpt_text(hit, spans), truncated=True, spans=spans))
        else:
            room = int((left - cost(i, "")) / scale)
            if room >= MIN_PARTIAL_TOKENS:
                text = cut_to_tokens(hit.text, room)
                if text:
                    chosen.append(Source(hit, i, text, truncated=True, spans=[(0, len(text))]))
                    left -= cost(i, text)
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
