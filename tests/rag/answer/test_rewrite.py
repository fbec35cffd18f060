"""Follow-ups become standalone search queries; junk and failures fall back, never fail."""

import asyncio

from rag.answer.conversation import Message, turns_of
from rag.answer.llm import LLMClient, LLMConfig, LLMFailure
from rag.answer.rewrite import QueryRewriter, RewriteNote, clean_rewrite, fallback_query
from rag.settings import Settings
from tests.helpers.servers import free_port

THREAD = turns_of(
    [
        Message("user", "Where was the Zorblax reactor built?"),
        Message("assistant", "The Zorblax reactor was built in Oslo, Norway."),
    ]
)
FOLLOW_UP = "And who commissioned it?"


def test_clean_rewrite_accepts_queries_and_rejects_junk():
    assert (
        clean_rewrite('Query: "Who commissioned the Zorblax reactor?"\n', FOLLOW_UP)
        == "Who commissioned the Zorblax reactor?"
    )
    assert clean_rewrite("", FOLLOW_UP) is None
    assert clean_rewrite(FOLLOW_UP, FOLLOW_UP) is None  # nothing resolved: the fallback is better
    assert clean_rewrite("Last question: who commissioned it?", FOLLOW_UP) is None
    assert clean_rewrite("Who at the Oslo site commissioned it?", FOLLOW_UP) is None  # "it" left
    assert (
        clean_rewrite("Last question: who commissioned the Zorblax reactor?", FOLLOW_UP)
        == "who commissioned the Zorblax reactor?"
    )
    assert clean_rewrite("<|im_start|>assistant", FOLLOW_UP) is None
    assert clean_rewrite("word " * 400, FOLLOW_UP) is None  # an essay, not a query
    # an echo of the previous answer has lost what the follow-up asks about
    assert clean_rewrite("The Zorblax reactor was built in Oslo, Norway.", FOLLOW_UP) is None


def test_fallback_joins_recent_user_questions():
    assert fallback_query(FOLLOW_UP, THREAD) == (
        "Where was the Zorblax reactor built? And who commissioned it?"
    )
    long_thread = turns_of([Message("user", "x" * 5000)])
    assert len(fallback_query("q?", long_thread)) <= 600


def rewrite(settings: Settings, llm: LLMClient | None):
    async def run():
        try:
            return await QueryRewriter(settings, llm).search_query(FOLLOW_UP, THREAD)
        finally:
            if llm is not None:
                await llm.close()

    return asyncio.run(run())


def test_no_history_searches_the_question():
    query = asyncio.run(QueryRewriter(Settings(), None).search_query("Plain question?", []))
    assert (query.text, query.source) == ("Plain question?", "question")


def test_llm_down_falls_back_and_still_names_the_subject():
    s = Settings(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_retries=0)
    query = rewrite(s, LLMClient(LLMConfig.from_settings(s)))
    assert query.source == "fallback" and query.note is LLMFailure.unavailable
    assert query.note == "llm_unavailable"  # the value the API reports
    assert "Zorblax" in query.text


def test_a_slow_llm_falls_back_within_the_timeout(fault_server):
    url, _ = fault_server
    s = Settings(
        llm_base_url=f"{url}/slow/v1", llm_model="fake", rewrite_timeout_s=1.0, llm_retries=0
    )
    query = rewrite(s, LLMClient(LLMConfig.from_settings(s)))
    assert query.source == "fallback" and query.note in ("llm_timeout",)


def test_rewriting_can_be_switched_off():
    query = rewrite(Settings(rewrite_queries=False), None)
    assert query.source == "fallback" and query.note is RewriteNote.off
    assert query.note == "rewriting is off"  # the value the API reports
