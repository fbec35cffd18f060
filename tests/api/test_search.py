"""POST /v1/search and the request validation every route shares."""

import json

import httpx
import pytest

from tests.api.conftest import api_for
from tests.helpers.servers import free_port


@pytest.fixture(scope="module")
def api(ingested, embedder):
    # The LLM is deliberately unreachable: search must not need it.
    with api_for(ingested, embedder, f"http://127.0.0.1:{free_port()}/v1") as url:
        yield url


def test_search_returns_parents_with_passages(api):
    r = httpx.post(
        f"{api}/v1/search",
        json={
            "query": "Quillon valve inventor",
            "top_k": 3,
            "include": ["passage_text", "parent_text"],
        },
    )
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["source"].endswith("valves.pdf")
    assert top["pages"] == [1, 2]
    p = top["passages"][0]
    assert p["text"] and p["text"] in top["text"]
    assert top["text"][p["start"] - top["start"] : p["end"] - top["start"]] == p["text"]


def test_results_carry_what_the_client_asks_for(api):
    """A snippet and passage offsets by default; texts on request, or GET /v1/parents/{id}."""
    body = {"query": "Quillon valve inventor", "top_k": 3}
    lean = httpx.post(f"{api}/v1/search", json=body).json()["results"]
    full = httpx.post(
        f"{api}/v1/search", json={**body, "include": ["passage_text", "parent_text"]}
    ).json()["results"]
    bare = httpx.post(f"{api}/v1/search", json={**body, "include": []}).json()["results"]
    assert all(r["text"] is None and r["passages"] and r["snippet"] for r in lean)
    assert all(p["text"] is None for r in lean for p in r["passages"])
    assert lean[0]["snippet"] == full[0]["passages"][0]["text"]
    assert all(r["text"] is None and r["passages"] == [] and r["snippet"] is None for r in bare)
    parent = httpx.get(f"{api}/v1/parents/{lean[0]['parent_id']}").json()
    assert parent["text"] == full[0]["text"] and parent["start"] == full[0]["start"]
    assert httpx.get(f"{api}/v1/parents/not-a-uuid").status_code == 422
    missing = httpx.get(f"{api}/v1/parents/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (
        httpx.post(f"{api}/v1/search", json={**body, "include": ["everything"]}).status_code == 422
    )


def test_lexical_only_and_semantic_only_queries_both_work(api):
    rare = httpx.post(f"{api}/v1/search", json={"query": "Hovinbyen", "top_k": 1}).json()
    assert rare["results"][0]["source"].endswith("reactor-update.eml")
    para = httpx.post(
        f"{api}/v1/search",
        json={"query": "how long before an idle agent gets logged out", "top_k": 1},
    ).json()
    assert para["results"][0]["source"].endswith("release-notes.txt")


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_modes(api, mode):
    r = httpx.post(f"{api}/v1/search", json={"query": "Zorblax reactor Oslo", "mode": mode})
    assert r.status_code == 200
    assert r.json()["results"][0]["source"].endswith("reactor-update.eml")


def test_filters(api, ingested):
    folder = str(ingested["docs"])
    r = httpx.post(
        f"{api}/v1/search",
        json={"query": "reactor", "filters": {"file_types": ["md"], "folders": [folder]}},
    )
    assert r.status_code == 200
    assert {x["file_type"] for x in r.json()["results"]} == {"md"}
    r = httpx.post(
        f"{api}/v1/search", json={"query": "reactor", "filters": {"folders": ["/nowhere"]}}
    )
    assert r.json()["results"] == []


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "visible text"),
        ({"query": "x" * 8001}, "query"),
        ({"query": "x", "top_k": -1}, "top_k"),
        ({"query": "x", "top_k": 100000}, "top_k"),
        ({"query": "x", "top_k": "many"}, "top_k"),
        ({"query": "x", "filters": {"author": "me"}}, "author"),
        ({"query": "x", "mode": "magic"}, "mode"),
        ({"text": "x"}, "query"),
    ],
)
def test_bad_search_requests(api, body, fragment):
    r = httpx.post(f"{api}/v1/search", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and fragment in err["message"]


def test_not_json(api):
    r = httpx.post(
        f"{api}/v1/search", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_readyz_ready_for_search_without_llm(api):
    r = httpx.get(f"{api}/readyz")
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True
    assert body["checks"]["llm"]["ok"] is False and body["checks"]["store"]["ok"] is True
    assert httpx.get(f"{api}/healthz").json() == {"status": "ok"}


def test_query_with_llm_down_is_503_and_search_still_works(api):
    r = httpx.post(f"{api}/v1/query", json={"question": "Where was the reactor built?"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "llm_unavailable"
    assert "http" not in r.text and "127.0.0.1" not in r.text  # no upstream URL
    assert httpx.post(f"{api}/v1/search", json={"query": "reactor"}).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_no_matching_documents_answers_at_once_even_with_the_llm_down(api, stream):
    """0 sources: the LLM is not asked (it would answer from memory); a clear reason."""
    body = {
        "question": "Where was the reactor built?",
        "stream": stream,
        "filters": {"document_ids": ["00000000-0000-0000-0000-000000000000"]},
    }
    r = httpx.post(f"{api}/v1/query", json=body)
    assert r.status_code == 200, r.text
    if stream:
        events = [line[7:] for line in r.text.splitlines() if line.startswith("event:")]
        assert events == ["sources", "final", "done"]
        final = json.loads(r.text.split("event: final\ndata: ")[1].split("\n")[0])
    else:
        final = r.json()
    assert final["reason"] == "no_matching_documents" and final["sources"] == []
    assert final["answer"].startswith("No documents matched") and final["citations"] == []
