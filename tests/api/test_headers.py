"""The sources in response headers: ASCII-safe, bounded, and complete while they fit."""

import json

from api.headers import MAX_SOURCES_BYTES, REQUEST_ID, SOURCES, SOURCES_COUNT, answer_headers
from rag.answer.budget import Source
from tests.rag.answer.test_prompting import hit


def test_sources_header_names_each_source_without_server_paths():
    first = hit("Text.", "d1")
    first.name, first.title = "mail/Zürich update.eml", "Réacteur «Zorblax»\r\nX-Evil: 1"
    sources = [
        Source(first, 0, "Text.", False, n=1),
        Source(hit("Other.", "d2"), 1, "x", False, n=2),
    ]
    headers = answer_headers(sources, "req-1")
    value = headers[SOURCES]
    assert value.isascii() and "\r" not in value and "\n" not in value
    assert json.loads(value) == [
        {"n": 1, "document_id": "d1", "title": first.title, "source": "mail/Zürich update.eml"},
        {"n": 2, "document_id": "d2", "title": "d2", "source": "d2.txt"},  # older points
    ]
    assert "/docs" not in value  # the absolute path never leaves the server
    assert headers[SOURCES_COUNT] == "2" and headers[REQUEST_ID] == "req-1"


def test_sources_header_is_bounded_and_says_how_many_there_were():
    many = []
    for i in range(100):
        h = hit("Text.", f"doc-{i:03d}")
        h.title = "A long title " * 20
        many.append(Source(h, i, "Text.", False, n=i + 1))
    headers = answer_headers(many, None)
    listed = json.loads(headers[SOURCES])
    assert len(headers[SOURCES]) <= MAX_SOURCES_BYTES and 0 < len(listed) < 100
    assert [s["n"] for s in listed] == list(range(1, len(listed) + 1))  # best first, no gaps
    assert headers[SOURCES_COUNT] == "100" and REQUEST_ID not in headers
    assert answer_headers([], "r")[SOURCES] == "[]"


def test_a_browser_client_on_an_allowed_origin_may_read_the_sources_headers(tmp_path):
    """CORS exposes the X-RAG-* headers: without ``expose_headers`` a browser hides them."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from rag.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, cors_origins=["http://app.example"]))
    client = TestClient(app)  # no lifespan: the CORS middleware answers before any route
    r = client.get("/healthz", headers={"Origin": "http://app.example"})
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {SOURCES.lower(), SOURCES_COUNT.lower(), REQUEST_ID.lower()} <= exposed
