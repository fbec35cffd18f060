"""The LLM's follow-up searches (rag.answer.decompose): what a proposal may be, the fallback
to the deterministic hop on every LLM failure and on a useless proposal, the plan searched
(the bridge found by the proposed query) and, with the real vLLM, the answer route saying
what was searched. Same tiny corpus as test_hops: the bridge shares no word with the
question."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from rag.access.scope import ReadScope
from rag.answer.decompose import HopDecomposer, HopPlan, PlanNote, clean_proposals
from rag.answer.hops import FollowUp, follow_ups
from rag.answer.llm import LLMClient, LLMConfig, LLMFailure
from rag.settings import RetrievalMode
from rag.store.search import SearchFilters
from tests.rag.answer.test_hops import BRIDGE, QUESTION, corpus, names_of, retriever

__all__ = ["corpus"]  # the module-scoped fixture, shared with test_hops

FOUND = "[1] Maret Kask: Her best-known book, the novel Velvet Harbour, was written in 1952."


def test_clean_proposals_keeps_only_usable_queries() -> None:
    text = "\n".join(
        [
            "1. Velvet Harbour opera composer",
            "- Query: Velvet Harbour adaptation",
            "2) Velvet Harbour opera composer",  # the same again
            "NONE",
            "<|eot_id|> Velvet Harbour",  # markup
            QUESTION,  # the question back
            "Hello world",  # about neither the question nor what was found
            "Velvet " * 30,  # an essay, not a query
            '"Velvet Harbour premiere"',
        ]
    )
    assert clean_proposals(text, QUESTION, FOUND, limit=3) == [
        "Velvet Harbour opera composer",
        "Velvet Harbour adaptation",
        "Velvet Harbour premiere",
    ]
    assert clean_proposals(text, QUESTION, FOUND, limit=1) == ["Velvet Harbour opera composer"]
    assert clean_proposals("NONE", QUESTION, FOUND, limit=3) == []


def _first(corpus, embedder, **retrieval):
    settings, store = corpus
    r = retriever(settings, embedder, store, **retrieval)
    filters = SearchFilters.within(None, ReadScope.everything())
    return r, r.first_hop(QUESTION, 3, RetrievalMode.hybrid, filters), filters


def _plan(corpus, embedder, llm_url: str, **retrieval) -> tuple[HopPlan, list]:
    settings, _ = corpus
    r, first, _ = _first(corpus, embedder)
    config = LLMConfig.from_settings(
        settings.model_copy(update={"llm_base_url": llm_url, "llm_model": "fake"}),
        connect_timeout=1.0,
        retries=0,
    )
    group = settings.retrieval.model_copy(update={"hop_decompose": True, **retrieval})

    async def go() -> HopPlan:
        llm = LLMClient(config)
        try:
            return await HopDecomposer(group, llm).plan(QUESTION, first.hits)
        finally:
            await llm.close()

    return asyncio.run(go()), first.hits


@pytest.mark.parametrize(
    ("mode", "note"),
    [
        ("error500", None),  # an LLMError, whichever code a 500 maps to
        ("badjson", LLMFailure.bad_response),
        ("slow", LLMFailure.timeout),
        ("ok", PlanNote.unusable),  # "Hello world [1].": about nothing asked or found
    ],
)
def test_failures_fall_back_to_the_deterministic_follow_ups(
    corpus, embedder, fault_server, mode, note
) -> None:
    base, _ = fault_server
    plan, first = _plan(corpus, embedder, f"{base}/{mode}/v1", hop_decompose_timeout_s=1.0)
    assert plan.source == "deterministic"
    assert plan.follow_ups == tuple(follow_ups(QUESTION, first, 1))
    assert plan.follow_ups  # the deterministic hop still searches
    if note is None:
        assert isinstance(plan.note, LLMFailure)
    else:
        assert plan.note == note


def test_unreachable_llm_falls_back(corpus, embedder) -> None:
    from tests.helpers.servers import free_port

    plan, _ = _plan(corpus, embedder, f"http://127.0.0.1:{free_port()}/v1")
    assert (plan.source, plan.note) == ("deterministic", LLMFailure.unavailable)


def test_off_needs_no_llm(corpus, embedder) -> None:
    settings, _ = corpus
    _, first, _ = _first(corpus, embedder)
    plan = asyncio.run(HopDecomposer(settings.retrieval, None).plan(QUESTION, first.hits))
    assert (plan.source, plan.note) == ("deterministic", PlanNote.off)


def test_a_proposed_query_is_searched_and_names_what_it_found(corpus, embedder) -> None:
    r, first, filters = _first(corpus, embedder, hop_budget_ms=200)
    assert BRIDGE not in names_of(first.hits)
    proposed = (FollowUp(first.hits[0], "Velvet Harbour opera"),)
    first.started = time.monotonic() - 10  # the first hop's budget long spent
    hits = r.follow(first, QUESTION, 3, RetrievalMode.hybrid, filters, proposed, proposed=True)
    bridge = next(h for h in hits if names_of([h]) == [BRIDGE])
    assert (bridge.hop, bridge.found_by) == (2, "Velvet Harbour opera")
    # the deterministic plan's budget counts from the first hop: spent, so not searched
    same = r.follow(first, QUESTION, 3, RetrievalMode.hybrid, filters, proposed, proposed=False)
    assert names_of(same) == names_of(first.hits)


def test_the_answer_path_searches_the_fallback_after_a_slow_llm(
    corpus, embedder, fault_server
) -> None:
    """The LLM timing out (1 s, past the 250 ms hop budget) still leaves the deterministic
    follow-up searched, and reported as searched: the budget counts from the proposal."""
    from rag.answer.events import AnswerRequest
    from rag.answer.pipeline import RagPipeline
    from rag.answer.rewrite import SearchQuery

    settings, store = corpus
    base, _ = fault_server
    settings = settings.model_copy(
        update={
            "llm_base_url": f"{base}/slow/v1",
            "llm_model": "fake",
            "llm_retries": 0,
            "hop_decompose": True,
            "hop_decompose_timeout_s": 1.0,
            "hop_budget_ms": 250,
        }
    )

    async def go():
        llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=1.0))
        try:
            pipeline = RagPipeline(settings, embedder, store, llm)
            request = AnswerRequest(question=QUESTION, scope=ReadScope.everything(), top_k=3)
            return await pipeline._retrieve(request, SearchQuery(QUESTION, "question"))
        finally:
            await llm.close()

    hits, search = asyncio.run(go())
    assert (search.follow_ups_by, search.follow_ups_note) == ("deterministic", LLMFailure.timeout)
    bridge = next(h for h in hits if names_of([h]) == [BRIDGE])
    assert bridge.hop == 2 and search.follow_ups == (bridge.found_by,)


@pytest.mark.llm
def test_answer_route_says_what_the_second_hop_searched(ingested, embedder, vllm) -> None:
    """With the real small model: off, the deterministic follow-up is reported; on, the
    model's proposal or, when unusable or failed, the fallback, with its reason."""
    from tests.api.conftest import api_for

    question = {"question": "Where was the Quillon valve made?", "max_tokens": 8}
    with api_for(ingested, embedder, vllm) as url:
        off = httpx.post(f"{url}/v1/query", json=question, timeout=180).json()
    assert off["follow_ups_by"] == "deterministic"
    assert off["follow_ups_note"] == PlanNote.off.value
    with api_for(ingested, embedder, vllm, hop_decompose=True) as url:
        on = httpx.post(f"{url}/v1/query", json=question, timeout=180).json()
    assert on["follow_ups_by"] in ("llm", "deterministic")
    if on["follow_ups_by"] == "llm":
        assert on["follow_ups_note"] is None and on["follow_up_queries"]
    else:
        assert on["follow_ups_note"] != PlanNote.off.value
    found = {s["found_by"] for s in on["sources"] if s["hop"] == 2}
    assert found <= set(on["follow_up_queries"])
