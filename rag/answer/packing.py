"""The packer: sources and earlier turns into a prompt that provably fits the budget.

``Packer`` owns what a prompt costs: the exact counter and the special tokens of the served
model (``ServedModel``), its window, and what a source block costs besides its text (the
label, rendered by ``Prompt.label``). Estimates choose (``rag.answer.budget``); the exact
count of the rendered prompt decides: ``Budget.admits`` holds for every ``Prepared`` it
returns. When the server's tokenizer counts more than the estimate, its ratio is learnt and
the sources repacked (at most six rounds). History goes first: the newest whole turns within
their share of the prompt (``RAG_HISTORY_SHARE``), counted exactly too, newest first, so no
turn that cannot fit is ever escaped or counted. Rendering, escaping, estimating and
choosing run in the CPU pool (``rag.answer.workers``), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.answer.budget import Budget, BudgetError, Source, choose_sources, document_order
from rag.answer.conversation import HistoryFit, Turn, flatten
from rag.answer.events import Usage
from rag.answer.model_info import ServedModel
from rag.answer.prompting import Messages, Prompt, history_message
from rag.answer.workers import cpu
from rag.documents import Hit
from rag.settings import ConversationSettings, LLMSettings
from rag.text.tokens import count_tokens

#: Rounds of repacking with a learnt tokenizer ratio before giving up.
_ROUNDS = 6


class ChatCounter(Protocol):
    """Exact prompt tokens of chat messages, chat template included."""

    async def count_chat(self, messages: Messages) -> int: ...


@dataclass
class Prepared:
    """A packed prompt, ready for the LLM: ``budget.admits(prompt_tokens)`` holds."""

    question: str
    sources: list[Source]
    messages: Messages
    budget: Budget
    prompt_tokens: int  # exact
    context_tokens: int  # what the sources added to the prompt
    history: HistoryFit = field(default_factory=lambda: HistoryFit((), 0, 0))

    @classmethod
    def nothing(cls, question: str, budget: Budget) -> Prepared:
        """No sources and no prompt: nothing matched, the LLM is not asked."""
        return cls(question, [], [], budget, 0, 0)

    def usage(self, server: dict[str, int] | None = None) -> Usage:
        server = server or {}
        return Usage(
            prompt_tokens=self.prompt_tokens,
            context_tokens=self.context_tokens,
            context_window=self.budget.window,
            headroom_tokens=self.budget.headroom,
            max_tokens=self.budget.max_tokens,
            margin_tokens=self.budget.margin,
            prompt_tokens_server=server.get("prompt_tokens"),
            completion_tokens=server.get("completion_tokens", 0),
            history_tokens=self.history.tokens,
            history_turns_kept=len(self.history.kept),
            history_turns_dropped=self.history.dropped,
        )


class Packer:
    def __init__(
        self,
        settings: LLMSettings,
        conversation: ConversationSettings,
        model: ServedModel,
        counter: ChatCounter | None = None,
    ) -> None:
        """``counter``: another exact count than the served model's (tests, benchmarks)."""
        self.settings, self.history_share = settings, conversation.history_share
        self.model = model
        self.counter: ChatCounter = counter or model

    def budget(self, max_tokens: int, max_context_tokens: int | None = None) -> Budget:
        """This request's budget, in the smaller of the configured and the served window
        (as last known)."""
        s = self.settings
        target = min(s.target_fill_tokens, max_context_tokens or s.target_fill_tokens)
        return Budget.for_request(
            s.context_window,
            self.model.window,
            max_tokens,
            s.margin_ratio,
            target,
            s.min_context_tokens,
        )

    def label_tokens(self, prompt: Prompt, hit: Hit) -> int:
        """What a source block of ``hit`` costs besides its text, in Llama 3.1 tokens (its
        rendered label, and 2 for the separator between blocks)."""
        return count_tokens(prompt.label(hit)) + 2

    async def pack(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        max_tokens: int,
        max_context_tokens: int | None = None,
        history: Sequence[Turn] = (),
        instructions: str | None = None,
    ) -> Prepared:
        """Pack ``hits`` for ``question`` after the newest whole turns of ``history`` that
        fit their share. Raises ``BudgetError`` (with the numbers) when the question and the
        client's instructions cannot fit with the sources' floor. Every CPU step (rendering,
        escaping, estimating, choosing) runs in the CPU pool, never on the event loop."""
        await self.model.known_window()  # asks the server first when not known yet
        budget = self.budget(max_tokens, max_context_tokens)
        prompt = Prompt(question, self.model.special_tokens, instructions=instructions)
        base = await self._count(prompt)
        question_tokens = await cpu(count_tokens, question)
        budget.refuse_unfit(base, question_tokens)  # the client's own text, sources' floor kept
        fit = HistoryFit((), 0, 0)
        if history:
            allowance = budget.history_allowance(self.history_share, base)
            fit = await self._fit_history(prompt, history, allowance, base)
            prompt = prompt.with_history(flatten(fit.kept))
            base += fit.tokens  # exact: the prompt without sources, counted in the fit
        budget.refuse_unfit(base, question_tokens)
        costs = await cpu(self._block_costs, prompt, hits)
        scale = 1.0
        for _ in range(_ROUNDS):
            available = budget.available(base)
            sources, messages = await cpu(_choose, prompt, hits, available, costs, scale)
            exact = await self.counter.count_chat(messages)
            if budget.admits(exact):
                return Prepared(question, sources, messages, budget, exact, exact - base, fit)
            estimated = await cpu(costs.total, sources) or 1
            scale *= max(1.02, (exact - base) / estimated * 1.02)
        raise BudgetError(
            "could not pack sources within the prompt limit",
            budget.numbers(base, question_tokens),
        )

    def _block_costs(self, prompt: Prompt, hits: Sequence[Hit]) -> _BlockCosts:
        return _BlockCosts({id(hit): self.label_tokens(prompt, hit) for hit in hits})

    async def _count(self, prompt: Prompt) -> int:
        """Exact tokens of ``prompt`` without sources (rendered in the CPU pool)."""
        return await self.counter.count_chat(await cpu(prompt.render))

    async def _fit_history(
        self, prompt: Prompt, turns: Sequence[Turn], allowance: int, alone: int
    ) -> HistoryFit:
        """The newest whole turns whose exact prompt tokens stay within ``allowance``.

        Newest first, each turn is estimated as the prompt holds it (escaped, without [n]
        markers; Llama 3.1 tokens and the template's tokens per message) until the next one
        would pass the allowance: older turns are never escaped nor counted, so the work is
        bounded by the allowance, not by the history's length. One exact count (the prompt
        with them, less ``alone``, the prompt without) confirms; when the serving tokenizer
        counts more, a binary search on how many of them to keep (one exact count a step)
        finds the most that fit."""
        if allowance <= 0:
            return HistoryFit((), len(turns), 0)
        counted: dict[int, int] = {0: 0}

        async def tokens_of(n: int) -> int:
            if n not in counted:
                kept = flatten(turns[len(turns) - n :])
                counted[n] = await self._count(prompt.with_history(kept)) - alone
            return counted[n]

        n = await cpu(_newest_within, turns, allowance, prompt.specials)
        if await tokens_of(n) > allowance:
            lo, hi = 0, n - 1  # tokens_of(lo) fits; find the most turns that do
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if await tokens_of(mid) <= allowance:
                    lo = mid
                else:
                    hi = mid - 1
            n = lo
        return HistoryFit(tuple(turns[len(turns) - n :]), len(turns) - n, await tokens_of(n))


#: Template tokens a chat message adds besides its text (Llama 3.1: header and end of turn).
_PER_MESSAGE = 8


def _newest_within(turns: Sequence[Turn], allowance: int, specials: Sequence[str]) -> int:
    """How many of the newest turns fit ``allowance`` by estimate (none older is counted)."""
    spent = 0
    for kept, turn in enumerate(reversed(turns)):
        for message in turn.messages:
            spent += count_tokens(history_message(message, specials)["content"]) + _PER_MESSAGE
        if spent > allowance:
            return kept
    return len(turns)


def _choose(
    prompt: Prompt, hits: Sequence[Hit], available: int, costs: _BlockCosts, scale: float
) -> tuple[list[Source], Messages]:
    """One round: sources for ``available`` tokens by estimate, and the prompt with them."""
    sources = document_order(choose_sources(hits, available, costs.of, scale))
    return sources, prompt.render(sources)


@dataclass(frozen=True)
class _BlockCosts:
    """Estimated tokens of a source block: its label (precomputed per hit) and its text
    (counted at ingest when whole; the exact count of the prompt guards the rest)."""

    labels: dict[int, int]

    def of(self, hit: Hit, text: str) -> int:
        body = hit.tokens if text is hit.text else count_tokens(text)
        return self.labels[id(hit)] + body

    def total(self, sources: Sequence[Source]) -> int:
        return sum(self.of(source.hit, source.text) for source in sources)
