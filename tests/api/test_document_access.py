"""The write side of access control through the API: access fields on POST /v1/ingest and
uploads (stamped by the job, refused with 403 when an ingester grants a group it lacks,
before anything is stored), and PATCH /v1/documents/{id} (admins; atomic for searches).

Principals are set by a test-only override of ``api.deps.get_principal`` (the header
``X-Test-Principal`` names one of ``PRINCIPALS``)."""

from __future__ import annotations

import shutil
import threading

import httpx
import pytest
from fastapi import Request

from api.app import create_app
from api.deps import Services, get_principal
from ingest.files.access import JobAccess
from ingest.indexer import Indexer
from ingest.jobs.inprocess import JobManager
from rag.access import Principal, ReadScope, Role
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS
from tests.helpers.jobs import finished_job
from tests.helpers.servers import free_port, serve

PRINCIPALS = {
    "admin": Principal("ada", Role.admin),
    "ingester": Principal("ivy", Role.ingester, frozenset({"eng", "ops"})),
    "reader": Principal("rita", Role.reader, frozenset({"eng"})),
}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def as_(who: str) -> dict[str, str]:
    return {"X-Test-Principal": who}


def _test_principal(request: Request) -> Principal:
    return PRINCIPALS[request.headers.get("x-test-principal", "admin")]


@pytest.fixture
def api(settings_factory, embedder, tmp_path):
    settings = settings_factory(ingest_roots=[tmp_path / "shared"])
    (tmp_path / "shared").mkdir()
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="none"))
    worker = Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots)
    jobs = JobManager(worker, tmp_path / "jobs", inbox=settings.inbox)
    pipeline = RagPipeline(settings, embedder, store, llm)
    app = create_app(settings, services=Services(settings, pipeline, store, llm, jobs))
    app.dependency_overrides[get_principal] = _test_principal
    with serve(app) as url:
        yield {
            "url": url,
            "shared": tmp_path / "shared",
            "store": store,
            "pipeline": pipeline,
            "embedder": embedder,
        }
    store.close()


def wait_job(url: str, job_id: str, who: str = "admin") -> dict:
    return finished_job(url, job_id, as_(who))


def documents(url: str) -> list[dict]:
    return httpx.get(f"{url}/v1/documents", headers=as_("admin")).json()["documents"]


def test_ingest_fields_are_stamped_and_unchanged_files_get_the_new_access(api):
    url, shared = api["url"], api["shared"]
    shutil.copy(DOCS / "release-notes.txt", shared)
    body = {"paths": [str(shared)], "collection": "eng", "groups": ["eng"], "users": ["ivy"]}
    r = httpx.post(f"{url}/v1/ingest", json=body, headers=as_("ingester"))
    assert r.status_code == 202, r.text
    assert wait_job(url, r.json()["job_id"], "ingester")["summary"]["ingested"] == 1
    [doc] = documents(url)
    assert (doc["collection"], doc["groups"], doc["users"], doc["ingested_by"]) == (
        "eng",
        ["eng"],
        ["ivy"],
        "ivy",
    )
    again = httpx.post(
        f"{url}/v1/ingest",
        json={"paths": [str(shared)], "groups": ["ops", "eng"]},
        headers=as_("ingester"),
    )
    summary = wait_job(url, again.json()["job_id"], "ingester")["summary"]
    assert (summary["unchanged"], summary["access_changed"]) == (1, 1)
    [doc] = documents(url)
    assert (doc["collection"], doc["groups"], doc["users"]) == ("eng", ["eng", "ops"], ["ivy"])


def test_an_ingester_granting_a_group_it_lacks_is_refused_before_anything_is_stored(api):
    url, shared = api["url"], api["shared"]
    shutil.copy(DOCS / "release-notes.txt", shared)
    for fields in ({"groups": ["eng", "execs"]}, {"users": ["bob"]}):
        r = httpx.post(
            f"{url}/v1/ingest", json={"paths": [str(shared)], **fields}, headers=as_("ingester")
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert ("'execs'" if "groups" in fields else "'bob'") in r.json()["error"]["message"]
    up = httpx.post(
        f"{url}/v1/documents",
        data={"groups": "execs"},
        files={"files": ("a.txt", b"Basalt is a volcanic rock.", "text/plain")},
        headers=as_("ingester"),
    )
    assert up.status_code == 403 and "'execs'" in up.json()["error"]["message"]
    bad = httpx.post(
        f"{url}/v1/ingest", json={"paths": [str(shared)], "groups": ["h r"]}, headers=as_("admin")
    )
    assert bad.status_code == 422
    assert httpx.get(f"{url}/v1/ingest", headers=as_("admin")).json()["jobs"] == []
    inbox = shared.parent / "data" / "inbox"
    assert not inbox.exists() or not any(p.is_file() for p in inbox.rglob("*"))
    assert documents(url) == []
    # An admin may grant any group.
    ok = httpx.post(
        f"{url}/v1/ingest", json={"paths": [str(shared)], "groups": ["execs"]}, headers=as_("admin")
    )
    assert ok.status_code == 202
    wait_job(url, ok.json()["job_id"])
    assert [d["groups"] for d in documents(url)] == [["execs"]]


def test_an_access_file_granting_a_group_the_ingester_lacks_fails_its_files(api):
    url, shared = api["url"], api["shared"]
    (shared / "hr").mkdir()
    shutil.copy(DOCS / "release-notes.txt", shared / "hr")
    shutil.copy(DOCS / "Normans.md", shared)
    (shared / "hr" / ".rag-access.toml").write_text('groups = ["hr"]\n')
    r = httpx.post(
        f"{url}/v1/ingest",
        json={"paths": [str(shared)], "groups": ["eng"]},
        headers=as_("ingester"),
    )
    job = wait_job(url, r.json()["job_id"], "ingester")
    assert job["summary"]["ingested"] == 1
    [failure] = job["failures"]
    assert failure["path"] == "hr/release-notes.txt"
    assert "may not grant group 'hr'" in failure["error"] and ".rag-access.toml" in failure["error"]
    assert [d["source"] for d in documents(url)] == ["Normans.md"]


@pytest.mark.parametrize("where", ["form", "query"])
def test_upload_fields_are_stamped(api, where):
    url = api["url"]
    fields = {"collection": "geo", "groups": "eng,ops"}
    r = httpx.post(
        f"{url}/v1/documents",
        data=fields if where == "form" else None,
        params=fields if where == "query" else None,
        files={"files": ("basalt.txt", b"Basalt is a fine-grained volcanic rock.", "text/plain")},
        headers=as_("ingester"),
    )
    assert r.status_code == 202, r.text
    wait_job(url, r.json()["job"]["job_id"], "ingester")
    [doc] = documents(url)
    assert (doc["collection"], doc["groups"], doc["users"], doc["ingested_by"]) == (
        "geo",
        ["eng", "ops"],
        [],
        "ivy",
    )


def test_patch_is_for_admins_and_an_unknown_id_is_the_same_404_as_get(api):
    url, shared = api["url"], api["shared"]
    shutil.copy(DOCS / "release-notes.txt", shared)
    r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(shared)]}, headers=as_("admin"))
    wait_job(url, r.json()["job_id"])
    [doc] = documents(url)
    target = f"{url}/v1/documents/{doc['document_id']}"
    for who in ("reader", "ingester"):
        refused = httpx.patch(target, json={"groups": ["eng"]}, headers=as_(who))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    missing = httpx.patch(f"{url}/v1/documents/{UNKNOWN}", json={"groups": ["x"]})
    got = httpx.get(f"{url}/v1/documents/{UNKNOWN}", headers=as_("admin"))
    assert missing.status_code == got.status_code == 404 and missing.json() == got.json()
    assert httpx.patch(target, json={"readers": ["x"]}).status_code == 422  # extra field
    assert httpx.patch(target, json={"groups": ["h r"]}).status_code == 422  # bad name
    assert httpx.patch(f"{url}/v1/documents/nope", json={}).status_code == 422
    ok = httpx.patch(target, json={"collection": "eng", "groups": ["eng"]}, headers=as_("admin"))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["collection"], ok.json()["groups"], ok.json()["users"]) == (
        "eng",
        ["eng"],
        [],
    )
    users = httpx.patch(target, json={"users": ["rita"]}).json()  # the rest is kept
    assert (users["collection"], users["groups"], users["users"]) == ("eng", ["eng"], ["rita"])
    assert httpx.get(target, headers=as_("reader")).status_code == 200  # rita reads it now


def test_patch_under_concurrent_searches_never_shows_a_document_to_neither_list(api):
    url, shared, store, pipeline = api["url"], api["shared"], api["store"], api["pipeline"]
    shutil.copy(DOCS / "reactor-update.eml", shared)
    worker = Indexer(pipeline.settings, api["embedder"], store, allowed_roots=[shared])
    assert worker.run([shared], access=JobAccess(groups=("blue",))).ingested == 1
    [doc] = documents(url)
    target = f"{url}/v1/documents/{doc['document_id']}"
    outsider = ReadScope.of(
        Principal("amy", Role.reader, frozenset({"A"})), default_is_everyone=False
    )
    both = ReadScope.of(
        Principal("bo", Role.reader, frozenset({"blue", "green"})), default_is_everyone=False
    )
    leaks: list[str] = []
    misses: list[str] = []
    searches = [0]
    stop = threading.Event()

    def search(scope: ReadScope, bad: list[str], expect_found: bool) -> None:
        while not stop.is_set():
            hits = pipeline.search("Zorblax reactor commissioning", scope=scope)
            found = any(h.document_id == doc["document_id"] for h in hits)
            searches[0] += 1
            if found != expect_found:
                bad.append(f"found={found}")

    threads = [
        threading.Thread(target=search, args=(outsider, leaks, False)),
        threading.Thread(target=search, args=(both, misses, True)),
    ]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            group = "green" if i % 2 == 0 else "blue"
            r = httpx.patch(target, json={"groups": [group]}, headers=as_("admin"), timeout=60)
            assert r.status_code == 200 and r.json()["groups"] == [group]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert searches[0] >= 10
    assert leaks == []  # group A never saw it
    assert misses == []  # and a reader of both lists always did: never neither
    assert [d["groups"] for d in documents(url)] == [["blue"]]
