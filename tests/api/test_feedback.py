"""POST /v1/feedback and its export: a reader's rating stored on disk (201), listed to an
admin (JSON and JSON lines), refused to a reader (403), bad input a JSON 422, a file that
cannot be written a 503; ratings survive a new app on the same data dir.

Principals come from ``tests.api.test_access``'s header override (``X-Test-Principal``);
the LLM is a closed port: no route here asks it anything."""

from __future__ import annotations

import json

import httpx
import pytest

from rag.feedback import FeedbackRecord
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.api.test_access import app_for, as_

RATING = {
    "rating": "up",
    "question": "Who invented the Quillon valve?",
    "answer": "Maret Kask invented it in 1931 [1].",
    "comment": "right, and cited",
    "request_id": "req-abc",
    "sources": [
        {"source": "valves.pdf", "document_id": "d1", "parent_id": "p1", "cited": True},
        {"source": "mail/update.eml", "document_id": "d2", "parent_id": "p2"},
    ],
}


@pytest.fixture(scope="module")
def opened(tmp_path_factory, embedder):
    settings = Settings(data_dir=tmp_path_factory.mktemp("feedback") / "data")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    yield settings, store
    store.close()


@pytest.fixture(scope="module")
def api(opened, embedder):
    settings, store = opened
    with app_for(settings, store, embedder) as url:
        yield url


def test_a_rating_is_stored_and_the_admin_exports_it(api, opened) -> None:
    r = httpx.post(f"{api}/v1/feedback", json=RATING, headers=as_("hr"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"id", "time"}
    listing = httpx.get(f"{api}/v1/feedback", headers=as_("admin"))
    assert listing.status_code == 200
    page = listing.json()
    mine = [f for f in page["feedback"] if f["id"] == created["id"]]
    assert len(mine) == 1 and page["total"] >= 1
    record = mine[0]
    assert record["principal"] == "hana" and record["rating"] == "up"
    assert record["request_id"] == "req-abc" and record["comment"] == "right, and cited"
    assert record["sources"][0] == RATING["sources"][0]
    assert record["sources"][1]["cited"] is False
    # on disk before the 201, where the settings say
    assert created["id"] in opened[0].feedback.feedback_path.read_text()
    # JSON lines: one record a line, what `bench evaluate --from-feedback` reads
    lines = httpx.get(
        f"{api}/v1/feedback", params={"format": "jsonl", "rating": "up"}, headers=as_("admin")
    )
    assert lines.status_code == 200
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    rows = [FeedbackRecord.model_validate_json(x) for x in lines.text.splitlines()]
    assert created["id"] in {x.id for x in rows}
    assert lines.headers["x-total-count"] == str(len(rows))
    # filters
    down = httpx.get(f"{api}/v1/feedback", params={"rating": "down"}, headers=as_("admin"))
    assert created["id"] not in down.text
    later = httpx.get(f"{api}/v1/feedback", params={"since": "2999-01-01"}, headers=as_("admin"))
    assert later.json() == {"feedback": [], "total": 0, "limit": 1000}
    # audited like every other write
    trail = httpx.get(
        f"{api}/v1/audit", params={"principal": "hana", "limit": 5}, headers=as_("admin")
    ).json()["entries"]
    line = next(e for e in trail if e["event"] == "feedback")
    assert line["after"] == {"feedback_id": created["id"], "rating": "up", "sources": 2}
    assert not line.get("documents")  # the client's word for its sources: not documents touched


def test_every_role_may_rate_and_only_an_admin_may_export(api) -> None:
    for who in ("hr", "ingester", "admin"):
        body = {"rating": "down", "question": f"asked by {who}?"}
        assert httpx.post(f"{api}/v1/feedback", json=body, headers=as_(who)).status_code == 201
    for who in ("hr", "ingester"):
        r = httpx.get(f"{api}/v1/feedback", headers=as_(who))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        jsonl = httpx.get(f"{api}/v1/feedback", params={"format": "jsonl"}, headers=as_(who))
        assert jsonl.status_code == 403


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"rating": "meh"}, "rating"),
        ({"rating": 1}, "rating"),
        ({"question": "   "}, "visible text"),
        ({"comment": "x" * 2001}, "2000"),
        ({"answer": "x" * 20_001}, "20000"),
        ({"sources": [{"source": f"f{i}.txt"} for i in range(51)]}, "50"),
        ({"sources": [{"source": "a.txt", "secret": 1}]}, "secret"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_ratings_are_a_json_422(api, change, says) -> None:
    r = httpx.post(f"{api}/v1/feedback", json={**RATING, **change}, headers=as_("hr"))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert says in error["message"]


def test_bad_export_parameters_are_a_json_422(api) -> None:
    for params in ({"since": "soon"}, {"rating": "meh"}, {"format": "xml"}, {"limit": 0}):
        r = httpx.get(f"{api}/v1/feedback", params=params, headers=as_("admin"))
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["code"] == "invalid_request"


def test_ratings_survive_a_new_app_on_the_same_data_dir(opened, embedder) -> None:
    settings, store = opened
    with app_for(settings, store, embedder) as first:
        r = httpx.post(f"{first}/v1/feedback", json=RATING, headers=as_("eng"))
        assert r.status_code == 201
        kept = r.json()["id"]
    fresh = settings.model_copy()  # a new process would read the same settings
    with app_for(fresh, store, embedder) as second:
        listing = httpx.get(f"{second}/v1/feedback", params={"limit": 100_000}).json()
    assert kept in {f["id"] for f in listing["feedback"]}
    on_disk = [json.loads(x) for x in settings.feedback.feedback_path.read_text().splitlines()]
    assert kept in {x["id"] for x in on_disk}


def test_a_file_that_cannot_be_written_is_a_503(opened, embedder, tmp_path) -> None:
    settings, store = opened
    blocked = tmp_path / "feedback.jsonl"
    blocked.mkdir()  # a folder where the file should be
    broken = settings.model_copy(update={"feedback_log": blocked})
    with app_for(broken, store, embedder) as url:
        r = httpx.post(f"{url}/v1/feedback", json=RATING, headers=as_("hr"))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "feedback_unavailable"
        assert str(tmp_path) not in r.text  # no server path in the body
        listing = httpx.get(f"{url}/v1/feedback", headers=as_("admin"))
        assert listing.status_code == 503
    (tmp_path / "a-file").write_text("")  # its folder cannot even be made
    no_dir = settings.model_copy(update={"feedback_log": tmp_path / "a-file" / "f.jsonl"})
    with app_for(no_dir, store, embedder) as url:
        r = httpx.post(f"{url}/v1/feedback", json=RATING, headers=as_("hr"))
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "feedback_unavailable"


def test_a_full_feedback_file_is_a_507_and_keeps_every_rating(opened, embedder, tmp_path) -> None:
    settings, store = opened
    path = tmp_path / "full.jsonl"
    path.write_bytes(b"x" * 999_990 + b"\n")  # an operator's file, just under 1 MB
    bounded = settings.model_copy(update={"feedback_log": path, "feedback_max_mb": 1})
    with app_for(bounded, store, embedder) as url:
        r = httpx.post(f"{url}/v1/feedback", json=RATING, headers=as_("hr"))
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "feedback_full"
        assert str(tmp_path) not in r.text
    assert path.read_bytes() == b"x" * 999_990 + b"\n"  # nothing written, nothing lost
