"""Rating answers on the page (real headless Chromium, the real API): 👍/👎 and a comment
under an answer go to POST /v1/feedback with the answer's request id, question, text and
sources; a refused send says why and can be sent again; a stored rating survives a reload.
And a source found by the second retrieval hop says so ("hop 2 · via: ...").

The LLM is the real vLLM (SmolLM2); the corpus adds test_hops' bridge document, which
shares no word with its question and is found only by the follow-up hop (top_k 3)."""

from __future__ import annotations

import json

import httpx
import pytest

from api.app import create_app
from api.deps import Services
from ingest.indexer import Indexer
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.api.test_page import browser, page, shot  # noqa: F401  (fixtures)
from tests.helpers.servers import serve
from tests.rag.answer.test_hops import BRIDGE, DOCS, QUESTION

pytestmark = pytest.mark.browser
VALVES = (
    "Quillon valves\n\nThe Quillon valve was invented in Tartu in 1931 by Maret Kask. "
    "It regulates steam flow in small boilers.\n"
)


@pytest.fixture(scope="module")
def rated_api(tmp_path_factory, embedder, vllm):
    base = tmp_path_factory.mktemp("page-feedback")
    docs = base / "docs"
    docs.mkdir()
    (docs / "valves.txt").write_text(VALVES)
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    settings = Settings(
        data_dir=base / "data",
        llm_base_url=vllm,
        llm_model="smollm2-135m-instruct",
        llm_tokenizer="server",
        default_top_k=3,
        default_max_tokens=32,
        llm_first_token_timeout=90.0,
        llm_total_timeout=120.0,
    )
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    assert not Indexer(settings, embedder, store).run([docs]).failed
    llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=2.0))
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, None)
    with serve(create_app(settings, services=services)) as url:
        yield url
    store.close()


def _stored(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/feedback").json()["feedback"]  # no keys: the local admin


def _ask(page, url: str, question: str) -> None:  # noqa: F811
    page.goto(url + "/")
    page.fill("#q", question)
    page.press("#q", "Enter")
    page.wait_for_selector("#turn-1 .feedback:not([hidden]) .fb-rate")


def test_a_rating_with_a_comment_is_stored_with_the_request_id(page, rated_api) -> None:  # noqa: F811
    before = len(_stored(rated_api))
    with page.expect_response("**/v1/query") as answered:
        _ask(page, rated_api, "Who invented the Quillon valve?")
    request_id = answered.value.headers["x-rag-request-id"]
    # a send that fails, then one refused, say why in the banner; the control stays
    page.route("**/v1/feedback", lambda route: route.abort())
    page.click("#turn-1 .fb-rate[data-rating=up]")
    page.click("#turn-1 .fb-send")
    page.wait_for_selector("#banner.error:not([hidden])")
    assert "network error" in page.text_content("#banner")
    page.unroute("**/v1/feedback")
    page.route(
        "**/v1/feedback",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body=json.dumps({"error": {"code": "feedback_unavailable", "message": "down"}}),
        ),
    )
    assert page.get_attribute("#turn-1 .fb-rate[data-rating=up]", "aria-pressed") == "true"
    page.fill("#turn-1 .fb-comment", "Right valve, right inventor.")
    shot(page, "feedback-form", show="#turn-1 .feedback")
    page.click("#turn-1 .fb-send")
    page.wait_for_function(
        "() => document.getElementById('banner').textContent.includes('feedback_unavailable')"
    )
    assert len(_stored(rated_api)) == before
    page.unroute("**/v1/feedback")
    page.click("#turn-1 .fb-send")
    page.wait_for_selector("#turn-1 .fb-thanks")
    assert "good answer" in page.text_content("#turn-1 .fb-thanks")
    assert page.is_hidden("#banner")  # the failed try's error is gone
    shot(page, "feedback-thanks", show="#turn-1 .feedback")
    (record,) = _stored(rated_api)[before:]
    assert record["rating"] == "up" and record["comment"] == "Right valve, right inventor."
    assert record["request_id"] == request_id
    assert record["question"] == "Who invented the Quillon valve?"
    # the answer the page received (its final event, kept in the tab's thread)
    turn = page.evaluate("() => JSON.parse(sessionStorage.getItem('rag-thread')).turns[0]")
    assert record["answer"] == turn["answer"] != ""
    listed = page.locator("#turn-1 .src").count()
    assert len(record["sources"]) == listed == len(turn["sources"]) > 0
    assert record["sources"][0]["source"] == "valves.txt"  # the best source first
    # cited as the page shows it
    shown_cited = page.locator("#source-1-1 .tag.cited").count() == 1
    assert record["sources"][0]["cited"] is shown_cited
    # a reload keeps the thread, rated: thanks, no second offer
    page.reload()
    page.wait_for_selector("#turn-1 .fb-thanks")
    assert page.locator("#turn-1 .fb-rate").count() == 0


def test_a_down_vote_without_comment(page, rated_api) -> None:  # noqa: F811
    before = len(_stored(rated_api))
    _ask(page, rated_api, "Where was the Quillon valve invented?")
    page.click("#turn-1 .fb-rate[data-rating=down]")
    page.click("#turn-1 .fb-send")
    page.wait_for_selector("#turn-1 .fb-thanks")
    assert "bad answer" in page.text_content("#turn-1 .fb-thanks")
    (record,) = _stored(rated_api)[before:]
    assert record["rating"] == "down" and record["comment"] == ""


def test_a_hop_two_source_says_which_search_found_it(page, rated_api) -> None:  # noqa: F811
    before = len(_stored(rated_api))
    with page.expect_response("**/v1/query") as answered:
        _ask(page, rated_api, QUESTION)
    request_id = answered.value.headers["x-rag-request-id"]
    hops = page.locator("#turn-1 .src .tag.hop")
    assert hops.count() == 1  # only the bridge: the first hop found the others
    assert hops.first.text_content().startswith("hop 2 · via: " + QUESTION)
    # what the second hop searched, and who planned it (the deterministic hop here)
    searched = page.text_content("#turn-1 .searched")
    assert searched.startswith("Also searched: “" + QUESTION), searched
    assert searched.endswith("(names the first results hold)"), searched
    shot(page, "feedback-hop2", show="#turn-1 .sources")
    page.click("#turn-1 .fb-rate[data-rating=up]")
    page.click("#turn-1 .fb-send")
    page.wait_for_selector("#turn-1 .fb-thanks")
    (record,) = _stored(rated_api)[before:]
    assert record["request_id"] == request_id
    assert BRIDGE in [s["source"] for s in record["sources"]]
