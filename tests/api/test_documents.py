"""Documents and ingest jobs through the API (own store, since these write)."""

import shutil
import time

import httpx
import pytest

from api.app import create_app
from api.deps import Services
from ingest.indexer import Indexer
from ingest.jobs.inprocess import JobManager
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS
from tests.helpers.servers import free_port, serve


@pytest.fixture
def api(settings_factory, embedder, tmp_path):
    settings = settings_factory(ingest_roots=[tmp_path])
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="none"))
    jobs = JobManager(
        Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots),
        tmp_path / "jobs",
    )
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, jobs)
    with serve(create_app(settings, services=services)) as url:
        yield url, tmp_path
    store.close()


def wait_job(url, job_id):
    for _ in range(600):
        job = httpx.get(f"{url}/v1/ingest/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_ingest_job_list_get_delete(api):
    url, tmp = api
    folder = tmp / "inbox"
    folder.mkdir()
    shutil.copy(DOCS / "release-notes.txt", folder)
    shutil.copy(DOCS / "reactor-update.eml", folder)
    (folder / "empty.md").write_text("")
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(folder)]})
    assert r.status_code == 202
    job = wait_job(url, r.json()["job_id"])
    assert job["status"] == "done"
    assert job["summary"]["ingested"] == 2
    assert job["summary"]["failed"] == [{"path": str(folder / "empty.md"), "error": "empty file"}]
    assert job["progress"]["files_done"] == 3

    docs = httpx.get(f"{url}/v1/documents").json()
    assert docs["total"] == 2
    doc = next(d for d in docs["documents"] if d["source"].endswith(".eml"))
    one = httpx.get(f"{url}/v1/documents/{doc['document_id']}").json()
    assert one["title"] == "Zorblax reactor: commissioning update" and one["passages"] >= 1

    assert httpx.delete(f"{url}/v1/documents/{doc['document_id']}").status_code == 200
    assert httpx.get(f"{url}/v1/documents/{doc['document_id']}").status_code == 404
    hits = httpx.post(f"{url}/v1/search", json={"query": "Zorblax reactor"}).json()["results"]
    assert all(h["document_id"] != doc["document_id"] for h in hits)


def test_document_errors(api):
    url, tmp = api
    assert httpx.get(f"{url}/v1/documents/not-a-uuid").status_code == 422
    missing = httpx.delete(f"{url}/v1/documents/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{url}/v1/ingest/ffff").status_code == 404
    bad = httpx.post(f"{url}/v1/ingest", json={"paths": [str(tmp / "not" / "here")]})
    assert bad.status_code == 422 and "no such file" in bad.json()["error"]["message"]
    # Outside the roots: refused before looking, so existence there is never revealed.
    for path in ("/definitely/not/here", "/etc"):
        outside = httpx.post(f"{url}/v1/ingest", json={"paths": [path]})
        assert outside.status_code == 403 and outside.json()["error"]["code"] == "forbidden_path"
    assert httpx.post(f"{url}/v1/ingest", json={"paths": []}).status_code == 422
