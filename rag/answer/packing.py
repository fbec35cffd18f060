"""The packer: sources and earlier turns into a prompt that provably fits the budget.

``Packer`` owns what a prompt costs: the exact counter and the special tokens of the served
model (``ServedModel``), its window, and what a source block costs besides its text (the
label, rendered by ``Prompt.label``). Estimates choose (``rag.answer.budget``); the exact
count of the rendered prompt decides: ``Budget.admits`` holds for every ``Prepared`` it
returns. When the server's tokenizer counts more than the estimate, its ratio is learnt and
the sources repacked (at most six rounds). History goes first: the newest whole turns within
their share of the prompt (``RAG_HISTORY_SHARE``), counted exactly too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.answer.budget import Budget, BudgetError, Source, choose_sources, document_order
from rag.answer.conversation import HistoryFit, Turn, flatten
from rag.answer.events import Usage
from rag.answer.model_info import ServedModel
from rag.answer.prompting import Messages, Prompt
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
        fit their share. Raises ``BudgetError`` (with the numbers) when the question alone
        cannot fit."""
        await self.model.known_window()  # asks the server first when not known yet
        budget = self.budget(max_tokens, max_context_tokens)
        prompt = Prompt(question, self.model.special_tokens, instructions=instructions)
        base = await self.counter.count_chat(prompt.render())
        question_tokens = count_tokens(question)
        budget.refuse_unfit(base, question_tokens)  # the client's own text, sources' floor kept
        fit = HistoryFit((), 0, 0)
        if history:
            allowance = budget.history_allowance(self.history_share, base)
            fit = await self._fit_history(prompt, history, allowance, base)
            prompt = prompt.with_history(flatten(fit.kept))
            base += fit.tokens  # exact: the prompt without sources, counted in the fit
        budget.refuse_unfit(base, question_tokens)
        labels = {id(hit): self.label_tokens(prompt, hit) for hit in hits}
        costs = _BlockCosts(labels)
        scale = 1.0
        for _ in range(_ROUNDS):
            chosen = choose_sources(hits, budget.available(base), costs.of, scale)
            sources = document_order(chosen)
            messages = prompt.render(sources)
            exact = await self.counter.count_chat(messages)
            if budget.admits(exact):
                return Prepared(question, sources, messages, budget, exact, exact - base, fit)
            estimated = sum(costs.of(src.hit, src.text) for src in sources) or 1
            scale *= max(1.02, (exact - base) / estimated * 1.02)
        raise BudgetError(
            "could not pack sources within the prompt limit",
            budget.numbers(base, question_tokens),
        )

    async def _fit_history(
        self, prompt: Prompt, turns: Sequence[Turn], allowance: int, alone: int
    ) -> HistoryFit:
        """The newest whole turns whose exact prompt tokens stay within ``allowance``.

        Turns are dropped oldest first: estimated first (Llama 3.1 tokens per turn), then
        exact counts (the prompt with them, less ``alone``, the prompt without) confirm,
        dropping more while over."""
        kept = list(turns)
        estimate = [sum(count_tokens(m.content) + 8 for m in t.messages) for t in kept]
        while kept and sum(estimate) > allowance:
            kept.pop(0)
            estimate.pop(0)
        tokens = await self._history_tokens(prompt, kept, alone)
        while kept and tokens > allowance:
            kept.pop(0)
            tokens = await self._history_tokens(prompt, kept, alone)
        return HistoryFit(tuple(kept), len(turns) - len(kept), tokens)

    async def _history_tokens(self, prompt: Prompt, kept: Sequence[Turn], alone: int) -> int:
        if not kept:
            return 0
        return await self.counter.count_chat(prompt.with_history(flatten(kept)).render()) - alone


@dataclass(frozen=True)
class _BlockCosts:
    """Estimated tokens of a source block: its label (precomputed per hit) and its text
    (counted at ingest when whole; the exact count of the prompt guards the rest)."""

    labels: dict[int, int]

    def of(self, hit: Hit, text: str) -> int:
        body = hit.tokens if text is hit.text else count_tokens(text)
        return self.labels[id(hit)] + body
