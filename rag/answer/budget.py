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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from rag.answer.conversation import HistoryFit, Turn
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

    @classmethod
    def for_request(
        cls,
        configured_window: int,
        served_window: int | None,
        max_tokens: int,
        margin_ratio: float,
        target_fill: int,
    ) -> Budget:
        window = min(configured_window, served_window or configured_window)
        return cls(
            window=window,
            max_tokens=max_tokens,
            margin=math.ceil(window * margin_ratio),
            target_fill=target_fill,
        )

    @property
    def prompt_limit(self) -> int:
        """The most prompt tokens allowed: window minus answer tokens minus margin."""
        return self.window - self.margin - self.max_tokens

    @property
    def headroom(self) -> int:
        return self.max_tokens + self.margin


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


Messages = list[dict[str, str]]
#: Exact prompt tokens of chat messages, chat template included (local or the server's).
ChatCounter = Callable[[Messages], Awaitable[int]]


@dataclass
class Packed:
    sources: list[Source]
    messages: Messages
    prompt_tokens: int  # exact
    context_tokens: int  # what the sources added to the prompt


async def pack(
    hits: Sequence[Hit],
    budget: Budget,
    *,
    render: Callable[[Sequence[Source]], Messages],
    label_tokens: Callable[[Hit], int],
    count: ChatCounter,
    question_tokens: int,
    base: int | None = None,
) -> Packed:
    """Choose sources for ``budget`` and prove the invariant with an exact count.

    ``render`` builds the chat messages for a list of sources (the prompt module's job);
    ``label_tokens`` estimates a source block's tokens without its text. Estimates pick the
    sources; the exact count of the rendered prompt decides. When the server's tokenizer
    counts more than the estimate, its ratio is learnt and the sources repacked (at most six
    rounds). Raises ``BudgetError`` (with the numbers) when the question alone cannot fit.
    ``base``: the exact count of ``render([])`` when the caller has it already.
    """
    if base is None:
        base = await count(render([]))
    numbers = {
        "question_tokens": question_tokens,
        "prompt_tokens_without_sources": base,
        "max_tokens": budget.max_tokens,
        "margin_tokens": budget.margin,
        "context_window": budget.window,
        "prompt_limit": budget.prompt_limit,
    }
    if budget.prompt_limit <= 0:
        raise BudgetError(
            f"max_tokens {budget.max_tokens} plus the safety margin "
            f"{budget.margin} leave no room in the {budget.window}-token window",
            numbers,
        )
    if base > budget.prompt_limit:
        raise BudgetError(
            f"the question alone needs {base} prompt tokens but at most "
            f"{budget.prompt_limit} fit (window {budget.window} minus "
            f"max_tokens {budget.max_tokens} minus margin {budget.margin})",
            numbers,
        )
    available = min(budget.prompt_limit - base, budget.target_fill)

    def cost(hit: Hit, text: str) -> int:
        if text is hit.text:  # counted at ingest; the exact check below guards the rest
            return label_tokens(hit) + hit.tokens
        return label_tokens(hit) + count_tokens(text)

    scale = 1.0
    for _ in range(6):
        sources = document_order(choose_sources(hits, available, cost, scale))
        messages = render(sources)
        exact = await count(messages)
        if exact <= budget.prompt_limit:
            return Packed(sources, messages, exact, exact - base)
        estimated = sum(cost(src.hit, src.text) for src in sources) or 1
        scale *= max(1.02, (exact - base) / estimated * 1.02)
    raise BudgetError("could not pack sources within the prompt limit", numbers)


async def fit_history(
    turns: Sequence[Turn],
    allowance: int,
    history_tokens: Callable[[Sequence[Turn]], Awaitable[int]],
) -> HistoryFit:
    """The newest whole turns whose exact prompt tokens stay within ``allowance``.

    ``history_tokens(kept)`` counts what the kept turns add to the prompt, exactly. Turns are
    dropped oldest first: estimated first (Llama 3.1 tokens per turn), then exact counts
    confirm, dropping more while over."""
    kept = list(turns)
    estimate = [sum(count_tokens(m.content) + 8 for m in t.messages) for t in kept]
    while kept and sum(estimate) > allowance:
        kept.pop(0)
        estimate.pop(0)
    tokens = await history_tokens(kept) if kept else 0
    while kept and tokens > allowance:
        kept.pop(0)
        tokens = await history_tokens(kept) if kept else 0
    return HistoryFit(tuple(kept), len(turns) - len(kept), tokens)
