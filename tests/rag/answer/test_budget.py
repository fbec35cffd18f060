"""The budget invariant, proven over random requests with the real Llama 3.1 tokenizer
(the packer's exact count against ``Budget``)."""

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rag.answer.budget import Budget, BudgetError, Source, cut_to_tokens, document_order
from rag.answer.conversation import Message
from rag.answer.model_info import ServedModel
from rag.answer.packing import ChatCounter, Packer
from rag.answer.prompting import Messages
from rag.documents import Hit
from rag.settings import Settings
from rag.text.tokens import count_llama31_chat, count_tokens
from tests.helpers.hits import make_hit as build_hit

TEXT = (Path(__file__).parents[2] / "fixtures" / "docs" / "Normans.md").read_text()


def make_hit(i: int, start: int, length: int) -> Hit:
    text = TEXT[start : start + length] or "x"
    return build_hit(
        text,
        f"d{i % 3}",
        "md",
        parent_id=f"p{i}",
        title=f"Doc {i % 3}",
        pages=[i],
        start=start,
        tokens=count_tokens(text),
        score=1.0 / (i + 1),
        parent_index=i,
    )


def packer(
    window: int, margin: float, fill: int, share: float = 0.25, counter: ChatCounter | None = None
) -> Packer:
    s = Settings(
        context_window=window,
        margin_ratio=margin,
        target_fill_tokens=fill,
        llm_tokenizer="llama3",
        history_share=share,
    )
    return Packer(s.llm, s.conversation, ServedModel(s.llm, None, s.model_dir), counter)


hits_strategy = st.lists(
    st.tuples(st.integers(0, len(TEXT) - 1), st.integers(1, 12_000)), min_size=0, max_size=12
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hits=hits_strategy,
    window=st.integers(1024, 131_072),
    margin=st.floats(0.0, 0.3),
    max_tokens=st.integers(1, 16_000),
    qlen=st.integers(1, 20_000),
    fill=st.integers(256, 131_072),
)
def test_invariant_never_exceeded(hits, window, margin, max_tokens, qlen, fill):
    p = packer(window, margin, fill)
    question = (TEXT * 3)[:qlen]
    hit_list = [make_hit(i, s, n) for i, (s, n) in enumerate(hits)]
    try:
        prepared = asyncio.run(p.pack(question, hit_list, max_tokens=max_tokens))
    except BudgetError as exc:
        n = exc.numbers
        limit = n["prompt_limit"] - n["min_context_tokens"]  # sources keep their floor
        assert n["prompt_tokens_without_sources"] > limit or n["prompt_limit"] <= 0
        return
    b = prepared.budget
    exact = count_llama31_chat(prepared.messages)
    assert exact == prepared.prompt_tokens
    assert exact + max_tokens <= b.window - b.margin
    assert prepared.context_tokens <= max(b.target_fill, 0) + 64  # block labels only


def test_server_tokenizer_that_counts_more_still_fits(embedder):
    """A different real tokenizer (BGE WordPiece over the rendered prompt) as the server's."""
    from rag.text.tokens import render_llama31_chat

    class WordPiece:
        async def count_chat(self, messages: Messages) -> int:
            return embedder.count_tokens(render_llama31_chat(messages)) * 2

    counter = WordPiece()
    p = packer(8192, 0.1, 6000, counter=counter)
    hits = [make_hit(i, i * 3000, 6000) for i in range(6)]
    prepared = asyncio.run(p.pack("Who was Rollo?", hits, max_tokens=512))
    exact = asyncio.run(counter.count_chat(prepared.messages))
    assert exact + 512 <= prepared.budget.window - prepared.budget.margin
    assert prepared.sources, "something should still fit"


def test_question_alone_too_big_is_a_budget_error_with_numbers():
    p = packer(2048, 0.1, 1000)
    with pytest.raises(BudgetError) as err:
        asyncio.run(p.pack(TEXT[:20_000], [], max_tokens=100))
    assert err.value.numbers["context_window"] == 2048
    assert err.value.numbers["prompt_tokens_without_sources"] > err.value.numbers["prompt_limit"]


def test_window_is_min_of_configured_and_served():
    b = Budget.for_request(131_072, 8192, 500, 0.1, 32_768)
    assert (b.window, b.margin, b.prompt_limit) == (8192, 820, 8192 - 820 - 500)


def test_cut_at_sentence_boundary():
    text = "One two three. Four five six. Seven eight nine."
    cut = cut_to_tokens(text, count_tokens("One two three. Four five six.") + 1)
    assert cut == "One two three. Four five six."


def test_document_order_groups_documents_by_best_rank_and_keeps_position():
    a1, a2, b1 = make_hit(0, 5000, 10), make_hit(3, 100, 10), make_hit(1, 50, 10)
    a2.document_id = a1.document_id
    ordered = document_order(
        [Source(a1, 0, "", False), Source(b1, 1, "", False), Source(a2, 2, "", False)]
    )
    assert [s.hit.parent_id for s in ordered] == ["p3", "p0", "p1"]
    assert [s.n for s in ordered] == [1, 2, 3]


# --- history inside the budget ---------------------------------------------------------------
LONG = TEXT * 40


def history_of(lengths: list[tuple[int, int]]) -> tuple[Message, ...]:
    """A thread of (question chars, answer chars) turns, cut from the real corpus text."""
    out, at = [], 0
    for q, a in lengths:
        out.append(Message("user", LONG[at : at + q] or "?"))
        at += q
        out.append(Message("assistant", LONG[at : at + a] or "."))
        at += a
    return tuple(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(st.tuples(st.integers(1, 4_000), st.integers(1, 60_000)), max_size=40),
    window=st.integers(2048, 131_072),
    max_tokens=st.integers(1, 4_000),
    share=st.floats(0.0, 0.9),
    qlen=st.integers(1, 2_000),
    hits=hits_strategy,
)
@example(turns=[], window=2048, max_tokens=1535, share=0.0, qlen=1, hits=[])  # floor refusal
def test_history_never_breaks_the_invariant(turns, window, max_tokens, share, qlen, hits):
    """Random threads up to ~200K tokens: the prompt (system + history + sources + question)
    always fits, history stays within its share, and only the oldest whole turns go."""
    from rag.answer.conversation import turns_of

    p = packer(window, 0.1, 131_072, share=share)
    question = TEXT[:qlen]
    thread = turns_of(history_of(turns))
    hit_list = [make_hit(i, s, n) for i, (s, n) in enumerate(hits)]
    try:
        prepared = asyncio.run(p.pack(question, hit_list, max_tokens=max_tokens, history=thread))
    except BudgetError as exc:  # only when the question alone cannot fit
        n = exc.numbers
        alone = count_llama31_chat(
            [{"role": "system", "content": ""}, {"role": "user", "content": question}]
        )
        # no room at all, or the prompt without sources (at least the bare question) leaves
        # less than the floor reserved for sources
        assert n["prompt_limit"] <= 0 or (
            n["prompt_tokens_without_sources"] >= alone
            and n["prompt_tokens_without_sources"] > n["prompt_limit"] - n["min_context_tokens"]
        )
        return
    b, fit = prepared.budget, prepared.history
    exact = count_llama31_chat(prepared.messages)
    assert exact == prepared.prompt_tokens and exact + max_tokens <= b.window - b.margin
    assert fit.tokens <= share * b.prompt_limit
    assert fit.kept == tuple(thread[len(thread) - len(fit.kept) :])  # a suffix: newest turns
    assert fit.dropped == len(thread) - len(fit.kept)
    usage = prepared.usage()
    assert (usage.history_turns_kept, usage.history_turns_dropped) == (len(fit.kept), fit.dropped)


def test_a_huge_history_is_trimmed_not_refused():
    from rag.answer.conversation import turns_of

    p = packer(8192, 0.1, 2000)
    thread = turns_of(history_of([(200, 20_000)] * 10))  # ~50K tokens of history
    prepared = asyncio.run(
        p.pack("And then?", [make_hit(0, 0, 3000)], max_tokens=256, history=thread)
    )
    assert (
        prepared.history.dropped > 0
        and prepared.history.tokens <= 0.25 * prepared.budget.prompt_limit
    )
    assert prepared.prompt_tokens + 256 <= 8192 - prepared.budget.margin
    assert prepared.messages[-1]["content"].rstrip().endswith("in square brackets.")


def test_sources_keep_a_floor_the_clients_own_text_may_not_take():
    """RAG_MIN_CONTEXT_TOKENS: a long system message is refused (413), never packed with
    no room left for sources; history is trimmed to leave the floor too."""
    from rag.answer.budget import Budget, BudgetError

    budget = Budget.for_request(4096, None, 64, 0.1, 1500, min_context=1000)
    assert budget.context_floor == 1000
    limit = budget.prompt_limit - 1000
    budget.refuse_unfit(limit, 10)  # exactly the floor left: accepted
    with pytest.raises(BudgetError) as err:
        budget.refuse_unfit(limit + 1, 10)
    assert err.value.numbers["min_context_tokens"] == 1000
    assert budget.history_allowance(0.9, limit - 100) == 100
    # the floor never exceeds what the caller asked for, nor half the prompt limit
    assert Budget.for_request(4096, None, 64, 0.1, 50, min_context=1000).context_floor == 50
    assert (
        Budget.for_request(2048, None, 64, 0.1, 1500, 5000).context_floor == (2048 - 205 - 64) // 2
    )


def test_history_is_fitted_newest_first_without_counting_what_cannot_fit():
    """200 turns whose text the escaping inflates (``<source`` repeated): the newest turns
    that fit are found with a few exact counts, and no turn older than those is ever
    rendered for a count (the work is bounded by the share, not by the history)."""
    from rag.answer.conversation import turns_of

    counted: list[str] = []

    class Recording:
        async def count_chat(self, messages: Messages) -> int:
            counted.append("".join(m["content"] for m in messages))
            return count_llama31_chat(messages)

    p = packer(8192, 0.1, 2000, counter=Recording())
    thread = turns_of(
        tuple(
            Message(role, f"TURN{i:03d} " + "<source " * 120)
            for i in range(200)
            for role in ("user", "assistant")
        )
    )
    prepared = asyncio.run(
        p.pack("And then?", [make_hit(0, 0, 3000)], max_tokens=256, history=thread)
    )
    fit = prepared.history
    assert 0 < len(fit.kept) < 20 and fit.dropped == 200 - len(fit.kept)
    assert fit.tokens <= 0.25 * prepared.budget.prompt_limit
    oldest_kept = 200 - len(fit.kept)
    assert not any(f"TURN{oldest_kept - 1:03d}" in text for text in counted)
    assert len(counted) <= 4  # alone, the kept history, the packed prompt (and one repack)
