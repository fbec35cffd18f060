"""The answer use case as one stream of typed events (RagPipeline.answer), with the real
embedder and store; the LLM is the real vLLM where it must answer, the fault server where a
failure is the point."""

import asyncio

import pytest

from rag.answer.conversation import Message
from rag.answer.events import (
    NO_MATCHING_DOCUMENTS,
    AnswerRequest,
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    InvalidRequest,
    SourcesEvent,
)
from rag.answer.llm import LLMClient, LLMConfig, LLMUnavailable
from rag.answer.pipeline import RagPipeline
from rag.store.documents import EVERYTHING
from rag.store.search import SearchFilters
from tests.helpers.llm_settings import served_settings
from tests.helpers.servers import free_port

QUESTION = "Where was the Zorblax reactor built?"


def events_of(ingested, embedder, base_url, model="fake", request=None, **overrides):
    settings = served_settings(ingested, base_url, model, **{"default_max_tokens": 32, **overrides})

    async def run():
        llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=2.0))
        pipeline = RagPipeline(settings, embedder, ingested["store"], llm)
        try:
            return [
                e async for e in pipeline.answer(request or AnswerRequest(QUESTION, EVERYTHING))
            ]
        finally:
            await llm.close()

    return asyncio.run(run())


@pytest.mark.llm
def test_events_in_order_with_the_real_llm(ingested, embedder, vllm):
    events = events_of(ingested, embedder, vllm, model="smollm2-135m-instruct")
    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], FinalEvent)
    assert all(isinstance(e, DeltaEvent) for e in events[1:-1]) and len(events) > 2
    final = events[-1]
    assert final.answer == "".join(e.text for e in events[1:-1]).strip()
    assert final.sources[0].hit.source.endswith("reactor-update.eml")
    assert final.usage.prompt_tokens == final.usage.prompt_tokens_server
    assert {"retrieval", "packing", "first_token", "generation"} <= final.timings.keys()


def test_nothing_matched_answers_without_the_llm(ingested, embedder, fault_server):
    url, fs = fault_server
    before = sum(fs.calls.values())
    request = AnswerRequest(QUESTION, EVERYTHING, filters=SearchFilters(file_types=["xlsx"]))
    events = events_of(ingested, embedder, f"{url}/ok/v1", request=request)
    assert [type(e) for e in events] == [SourcesEvent, FinalEvent]
    assert events[-1].reason == NO_MATCHING_DOCUMENTS and events[-1].sources == []
    assert sum(fs.calls.values()) == before  # the LLM was not asked


def test_llm_down_is_raised_before_any_event(ingested, embedder):
    with pytest.raises(LLMUnavailable):
        events_of(
            ingested,
            embedder,
            f"http://127.0.0.1:{free_port()}/v1",
            llm_tokenizer="llama3",
            llm_retries=0,
        )


def test_a_failure_after_the_sources_is_an_error_event(ingested, embedder, fault_server):
    url, _ = fault_server
    events = events_of(ingested, embedder, f"{url}/cut/v1")
    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], ErrorEvent)
    assert events[-1].error.code == "llm_bad_response"


def test_settings_bound_the_request(ingested, embedder, fault_server):
    url, _ = fault_server
    with pytest.raises(InvalidRequest, match="max_tokens 99999 exceeds the limit 8192"):
        events_of(
            ingested,
            embedder,
            f"{url}/ok/v1",
            request=AnswerRequest(QUESTION, EVERYTHING, max_tokens=99_999),
        )
    with pytest.raises(InvalidRequest, match="at most 20 characters"):
        events_of(ingested, embedder, f"{url}/ok/v1", max_question_chars=20)


@pytest.mark.parametrize(
    ("history", "limit", "message"),
    [
        pytest.param(
            tuple(Message(role, f"turn {i}") for i in range(6) for role in ("user", "assistant")),
            {"max_history_turns": 5},
            "at most 5 earlier turns",
            id="turns",
        ),
        pytest.param(
            (Message("user", "x" * 500), Message("assistant", "y" * 600)),
            {"max_history_chars": 1000},
            "at most 1000 characters",
            id="characters",
        ),
    ],
)
def test_history_is_bounded_before_any_work(
    ingested, embedder, fault_server, history, limit, message
):
    url, _ = fault_server
    with pytest.raises(InvalidRequest, match=message):
        events_of(
            ingested,
            embedder,
            f"{url}/ok/v1",
            request=AnswerRequest(QUESTION, EVERYTHING, history=history),
            **limit,
        )
