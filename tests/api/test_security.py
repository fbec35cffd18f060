"""API keys, upload safety, body limits, metrics, request ids, CORS, bind safety."""

import subprocess
import sys

import httpx
import pytest

from api.app import create_app
from api.deps import Services
from api.security import UnsafeBind, check_bind_safety
from ingest.indexer import Indexer
from ingest.jobs.inprocess import JobManager
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS, ROOT
from tests.helpers.jobs import finished_job
from tests.helpers.servers import serve

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, embedder, fault_server):
    base, fs = fault_server
    tmp = tmp_path_factory.mktemp("secure")
    settings = Settings(
        data_dir=tmp / "data",
        api_keys=[KEY],
        max_upload_mb=0.05,
        ingest_roots=[tmp / "data" / "inbox"],
        max_request_bytes=200_000,
        llm_base_url=f"{base}/ok/v1",
        llm_model="fake",
        llm_tokenizer="server",
    )
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig(base_url=settings.llm_base_url, model="fake"))
    jobs = JobManager(
        Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots), tmp / "jobs"
    )
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, jobs)
    with serve(create_app(settings, services=services)) as url:
        yield url, settings, fs
    store.close()


AUTH = {"Authorization": f"Bearer {KEY}"}


def finished(url: str, job_id: str) -> dict:
    """The job's view once it is no longer queued or running."""
    return finished_job(url, job_id, AUTH, polls=300)


def test_routes_need_the_key(secured):
    url, _, _ = secured
    for method, path, body in [
        ("POST", "/v1/search", {"query": "x"}),
        ("GET", "/v1/documents", None),
        ("POST", "/v1/query", {"question": "x"}),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = httpx.request(method, url + path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json() == {
                "error": {"code": "unauthorized", "message": "missing or invalid API key"}
            }
            assert r.headers["www-authenticate"] == "Bearer"
            assert KEY not in r.text
    assert httpx.post(url + "/v1/search", json={"query": "x"}, headers=AUTH).status_code == 200


def test_public_routes_stay_public(secured):
    url, _, _ = secured
    for path in ("/healthz", "/readyz", "/", "/static/app.js", "/metrics"):
        assert httpx.get(url + path).status_code == 200, path


def test_schema_and_docs_need_the_key(secured):
    url, _, _ = secured
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(url + path).status_code == 401, path
    assert httpx.get(url + "/openapi.json", headers=AUTH).status_code == 200


def test_readyz_tells_the_public_only_ready_or_not(secured):
    url, settings, _ = secured
    public = httpx.get(url + "/readyz").json()
    assert public == {
        "ready": True,
        "checks": {"store": {"ok": True}, "embedder": {"ok": True}, "llm": {"ok": True}},
    }
    detailed = httpx.get(url + "/readyz", headers=AUTH).json()
    assert "passages" in detailed["checks"]["store"]
    assert detailed["checks"]["llm"]["max_model_len"] == 4096
    assert settings.llm_base_url not in httpx.get(url + "/readyz", headers=AUTH).text


def test_auth_comes_before_any_other_check(secured):
    url, _, _ = secured
    for body in (b"{not json", b'{"query": 3}', b""):
        r = httpx.post(
            url + "/v1/search", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 401, body
    assert httpx.get(url + "/v1/no-such-route").status_code == 401
    big = httpx.post(
        url + "/v1/search", content=b"x" * 300_000, headers={"content-type": "application/json"}
    )
    assert big.status_code == 401


def test_oversize_headers_get_a_json_error(secured):
    url, _, _ = secured
    r = httpx.get(url + "/v1/documents", headers={"Authorization": "Bearer " + "k" * 1_000_000})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "top_k": "3"},
        {"query": "x", "top_k": True},
        {"query": "x", "top_k": 2.0},
        {"query": "\x00\x01\u200b\t "},
        {"query": ["x"]},
        {"query": "x", "filters": {"file_types": [1]}},
    ],
)
def test_search_types_are_strict(secured, body):
    url, _, _ = secured
    r = httpx.post(url + "/v1/search", headers=AUTH, json=body)
    assert r.status_code == 422, body
    assert r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"question": "x", "stream": "yes"},
        {"question": "x", "temperature": "0.5"},
        {"question": "x", "max_tokens": "16"},
        {"question": "\u0007\u0008"},
    ],
)
def test_query_types_are_strict(secured, body):
    url, _, _ = secured
    assert httpx.post(url + "/v1/query", headers=AUTH, json=body).status_code == 422


def test_question_length_comes_from_settings(secured):
    url, settings, _ = secured
    r = httpx.post(
        url + "/v1/search", headers=AUTH, json={"query": "a" * (settings.max_question_chars + 1)}
    )
    assert r.status_code == 422 and "at most 8000 characters" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/tmp/a\x00b", "relative/path", "/tmp/\nx", ""])
def test_bad_ingest_paths_are_4xx_json(secured, path):
    url, _, _ = secured
    r = httpx.post(url + "/v1/ingest", headers=AUTH, json={"paths": [path]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_upload_is_all_or_nothing(secured):
    url, settings, _ = secured
    settings.inbox.mkdir(parents=True, exist_ok=True)
    before = sorted(p.name for p in settings.inbox.iterdir())

    def upload(*files: tuple[str, bytes]) -> httpx.Response:
        parts = [("files", (name, content, "text/plain")) for name, content in files]
        return httpx.post(url + "/v1/documents", headers=AUTH, files=parts)

    r = httpx.post(
        url + "/v1/documents",
        headers=AUTH,
        files=[
            ("files", ("good-one.txt", b"good content here", "text/plain")),
            ("files", ("bad.exe", b"MZ", "application/octet-stream")),
        ],
    )
    assert r.status_code == 422
    r = upload(("good-two.txt", b"good content here"), ("empty.txt", b""))
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_file"
    r = upload(("twice.txt", b"one"), ("twice.txt", b"two"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "duplicate_filename"
    assert sorted(p.name for p in settings.inbox.iterdir()) == before  # temporaries too


def test_upload_never_overwrites_silently(secured):
    url, settings, _ = secured

    def upload(content, **params):
        r = httpx.post(
            url + "/v1/documents",
            headers=AUTH,
            params=params,
            files={"files": ("minutes.txt", content, "text/plain")},
        )
        assert r.status_code == 202, r.text
        finished(url, r.json()["job"]["job_id"])  # stored: the same bytes are "unchanged"
        return r.json()["files"][0]

    first = upload(b"Minutes of the first meeting about valves.")
    assert first["outcome"] == "new"
    assert upload(b"Minutes of the first meeting about valves.")["outcome"] == "unchanged"
    other = upload(b"Minutes of a different meeting about pumps.")
    assert other["outcome"] == "renamed" and other["path"] == "minutes-2.txt"
    assert (settings.inbox / "minutes.txt").read_bytes().startswith(b"Minutes of the first")
    replaced = upload(b"Corrected minutes of the first meeting.", replace="true")
    assert replaced["outcome"] == "replaced" and replaced["path"] == first["path"]
    assert (settings.inbox / "minutes.txt").read_bytes().startswith(b"Corrected")


def test_an_ingest_job_does_not_follow_links_out_of_the_roots(secured, tmp_path):
    import os

    url, settings, _ = secured
    folder = settings.inbox / "linked"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inside.txt").write_text("Inside the inbox: the Quillon valve. " * 10)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret " * 50)
    os.symlink("/etc", folder / "etclink")
    os.symlink(outside, folder / "out")
    r = httpx.post(url + "/v1/ingest", headers=AUTH, json={"paths": [str(folder)]})
    assert r.status_code == 202, r.text
    job = finished(url, r.json()["job_id"])
    assert job["status"] == "done"
    # named relative to the root they lie under (the inbox), the link, never its target
    assert sorted(job["summary"]["failed"], key=lambda f: f["path"]) == [
        {"path": "linked/etclink", "error": "outside the allowed roots"},
        {"path": "linked/out", "error": "outside the allowed roots"},
    ]
    sources = [
        d["source"] for d in httpx.get(url + "/v1/documents", headers=AUTH).json()["documents"]
    ]
    assert not any(s.startswith(("/etc", str(outside))) for s in sources)
    r = httpx.post(url + "/v1/ingest", headers=AUTH, json={"paths": [str(folder / "etclink")]})
    assert r.status_code == 403


def test_upload_ingests_into_the_inbox(secured):
    url, settings, _ = secured
    content = (DOCS / "release-notes.txt").read_bytes()
    r = httpx.post(
        url + "/v1/documents",
        headers=AUTH,
        files={"files": ("kestrel notes.txt", content, "text/plain")},
    )
    assert r.status_code == 202, r.text
    assert r.json()["saved"] == ["kestrel notes.txt"]  # in the inbox, no server path
    assert r.json()["files"] == [
        {"filename": "kestrel notes.txt", "path": "kestrel notes.txt", "outcome": "new"}
    ]
    assert (settings.inbox / "kestrel notes.txt").read_bytes() == content
    job = finished(url, r.json()["job"]["job_id"])
    assert job["status"] == "done" and job["summary"]["ingested"] == 1


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "a/b.txt",
        "..\\evil.txt",
        ".hidden.txt",
        "..",
        "report\u202egnp.txt",
        "/etc/passwd.txt",
    ],
)
def test_upload_rejects_unsafe_names(secured, name):
    url, settings, _ = secured
    r = httpx.post(
        url + "/v1/documents", headers=AUTH, files={"files": (name, b"hello", "text/plain")}
    )
    assert r.status_code == 422, name
    assert r.json()["error"]["code"] == "invalid_filename"
    assert not (settings.inbox.parent / "evil.txt").exists()


def test_upload_rejects_types_and_sizes(secured):
    url, _, _ = secured
    r = httpx.post(url + "/v1/documents", headers=AUTH, files={"files": ("x.exe", b"MZ", "x")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unsupported_type"
    big = b"word " * 20_000  # 100 KB over a 50 KB limit
    r = httpx.post(
        url + "/v1/documents", headers=AUTH, files={"files": ("big.txt", big, "text/plain")}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_json_body_limit(secured):
    url, _, _ = secured
    r = httpx.post(url + "/v1/search", headers=AUTH, json={"query": "x" * 300_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: counted while streaming in
        for _ in range(30):
            yield b" " * 10_000

    r = httpx.post(
        url + "/v1/search", headers={**AUTH, "content-type": "application/json"}, content=chunks()
    )
    assert r.status_code == 413


def test_request_id_metrics_and_forwarding(secured):
    url, _, fs = secured
    # a document the question is about (the relevance floor refuses unrelated stores)
    up = httpx.post(
        url + "/v1/documents",
        headers=AUTH,
        files={
            "files": (
                "reactor.txt",
                b"The Zorblax reactor was built in Tromso in 1987 by the Nordic Fusion Works.",
                "text/plain",
            )
        },
    )
    assert up.status_code == 202, up.text
    assert finished(url, up.json()["job"]["job_id"])["status"] == "done"
    r = httpx.post(
        url + "/v1/query",
        headers={**AUTH, "X-Request-Id": "trace-123"},
        json={"question": "Where was the reactor built?"},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-123"
    assert fs.request_ids[-1] == "trace-123"  # passed on to the LLM server
    assert len(httpx.get(url + "/healthz").headers["x-request-id"]) == 32
    text = httpx.get(url + "/metrics").text
    assert 'rag_http_request_seconds_count{method="POST",route="/v1/query",status="200"}' in text
    assert 'rag_stage_seconds_count{stage="generation"}' in text
    assert "rag_llm_tokens_total" in text and "rag_context_fill_ratio_bucket" in text
    assert "rag_ingest_queue_depth" in text


def test_cors_is_off_by_default(secured):
    url, _, _ = secured
    r = httpx.options(
        url + "/v1/search",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_bind_safety():
    with pytest.raises(UnsafeBind):
        check_bind_safety(Settings(api_host="0.0.0.0"))
    check_bind_safety(Settings(api_host="0.0.0.0", api_keys=["k"]))
    check_bind_safety(Settings(api_host="0.0.0.0", allow_no_auth=True))
    check_bind_safety(Settings(api_host="127.0.0.1"))
    check_bind_safety(Settings(api_host="::1"))
    out = subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RAG_API_HOST": "0.0.0.0", "HOME": str(ROOT)},
        timeout=120,
    )
    assert out.returncode == 2 and "refusing to listen on 0.0.0.0" in out.stderr


def test_ingest_paths_are_confined_to_the_roots(secured):
    url, settings, _ = secured
    r = httpx.post(url + "/v1/ingest", headers=AUTH, json={"paths": ["/etc"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_path"
    sneaky = str(settings.inbox) + "/../../../etc"
    assert httpx.post(url + "/v1/ingest", headers=AUTH, json={"paths": [sneaky]}).status_code == 403
