"""Documents and ingest jobs through the API (own store, since these write)."""

import shutil

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
from tests.helpers.jobs import finished_job as wait_job
from tests.helpers.servers import free_port, serve


@pytest.fixture
def api(settings_factory, embedder, tmp_path):
    settings = settings_factory(ingest_roots=[tmp_path])
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="none"))
    jobs = JobManager(
        Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots),
        tmp_path / "jobs",
        inbox=settings.inbox,
    )
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, jobs)
    with serve(create_app(settings, services=services)) as url:
        yield url, tmp_path
    store.close()


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
    # Paths relative to the shared root they lie under (here tmp), never absolute.
    assert job["summary"]["failed"] == [{"path": "inbox/empty.md", "error": "empty file"}]
    assert job["failures"] == [{"path": "inbox/empty.md", "error": "empty file"}]
    assert job["paths"] == ["inbox"] and str(tmp) not in r.text + str(job)
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


def upload(url, name, content, **params):
    return httpx.post(
        f"{url}/v1/documents",
        params=params,
        files={"files": (name, content, "text/plain")},
        timeout=60,
    )


def test_replace_onto_a_folder_or_a_pipe_is_a_409_with_a_reason(api):
    import os

    url, tmp = api
    inbox = tmp / "data" / "inbox"
    (inbox / "report.md").mkdir(parents=True)
    (inbox / "report.md" / "kept.txt").write_text("inside the folder")
    os.mkfifo(inbox / "pipe.txt")
    for name in ("report.md", "pipe.txt"):
        r = upload(url, name, b"# Report\n\nNew text.", replace="true")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "name_taken"
        assert "not a file" in r.json()["error"]["message"]
    # all or none: a good file in the same request is not saved either
    r = httpx.post(
        f"{url}/v1/documents",
        params={"replace": "true"},
        files=[
            ("files", ("fine.md", b"# Fine\n\nText.", "text/plain")),
            ("files", ("report.md", b"# Report\n\nText.", "text/plain")),
        ],
    )
    assert r.status_code == 409
    assert sorted(p.name for p in inbox.iterdir()) == ["pipe.txt", "report.md"]
    assert (inbox / "report.md" / "kept.txt").read_text() == "inside the folder"
    # without replace such a name is simply taken: the file gets a free one (the pipe is
    # never opened to compare its bytes)
    for name, free in (("report.md", "report-2.md"), ("pipe.txt", "pipe-2.txt")):
        r = upload(url, name, b"# Other\n\nText.")
        assert r.status_code == 202, r.text
        assert r.json()["files"][0] == {"filename": name, "path": free, "outcome": "renamed"}
        assert r.json()["saved"] == [free]


def test_an_unwritable_inbox_is_a_503_not_a_500(api):
    url, tmp = api
    inbox = tmp / "data" / "inbox"
    inbox.parent.mkdir(parents=True, exist_ok=True)
    inbox.write_text("a file where the inbox folder should be")
    r = upload(url, "note.txt", b"some text")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "inbox_unavailable"
    assert str(tmp) not in r.text  # the path is for the log only


def test_name_collisions_are_resolved_off_the_event_loop(api, monkeypatch):
    """Many taken names of the same size: each is hashed before the next is tried. That
    work runs in a thread, so other requests are answered meanwhile. Proven without a
    clock: the first hash waits until a /healthz answer arrived during it, which could
    never happen if the hashing held the event loop (the wait would run out)."""
    import threading

    import api.uploads as uploads

    url, tmp = api
    inbox = tmp / "data" / "inbox"
    inbox.mkdir(parents=True)
    size, taken = 1 << 16, 60
    filler = b"x" * (size - 8)
    for i in range(1, taken + 1):
        (inbox / ("big.txt" if i == 1 else f"big-{i}.txt")).write_bytes(filler + b"%08d" % i)
    hashing, answered = threading.Event(), threading.Event()
    hashes: list[bool] = []  # per hash: whether a /healthz answer came while it waited
    same_bytes = uploads._same_bytes

    def observed(path, spooled):
        if not hashes:
            hashing.set()
            hashes.append(answered.wait(timeout=10))
        else:
            hashes.append(True)
        return same_bytes(path, spooled)

    monkeypatch.setattr(uploads, "_same_bytes", observed)

    def ping():
        hashing.wait(timeout=30)
        if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
            answered.set()

    pinger = threading.Thread(target=ping)
    pinger.start()
    r = upload(url, "big.txt", filler + b"new-one!")
    pinger.join()
    assert r.status_code == 202, r.text
    assert r.json()["files"][0]["path"] == f"big-{taken + 1}.txt"
    assert len(hashes) == taken  # every taken name of the same size was hashed
    assert hashes[0], "/healthz was not answered while the upload hashed the taken names"


def test_a_job_names_each_file_once_in_process(api):
    """The same folder twice, a folder and its subfolder, one file by two spellings."""
    import os

    url, tmp = api
    folder = tmp / "dup"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DOCS / "release-notes.txt", folder)
    shutil.copy(DOCS / "Normans.md", folder / "sub")
    os.symlink(folder / "release-notes.txt", tmp / "alias.txt")
    shapes = [
        ([folder, folder], 2),
        ([folder / "sub", folder], 2),
        ([folder / "release-notes.txt", tmp / "alias.txt", folder / ".." / "dup"], 2),
        ([tmp / "alias.txt", folder / "release-notes.txt"], 1),
    ]
    for paths, distinct in shapes:
        r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(p) for p in paths]})
        assert r.status_code == 202, r.text
        job = wait_job(url, r.json()["job_id"])
        assert job["status"] == "done" and job["files_total"] == distinct, (paths, job)
        assert job["counts"]["failed"] == 0


def _document(url, name):
    docs = httpx.get(f"{url}/v1/documents").json()["documents"]
    return next((d for d in docs if d["source"].rsplit("/", 1)[-1] == name), None)


def test_a_deleted_operator_file_stays_deleted_until_it_changes_or_is_named(api):
    url, tmp = api
    folder = tmp / "ops"
    folder.mkdir()
    for name in ("release-notes.txt", "Normans.md"):
        shutil.copy(DOCS / name, folder)

    def ingest(path):
        r = httpx.post(f"{url}/v1/ingest", json={"paths": [str(path)]})
        assert r.status_code == 202, r.text
        return wait_job(url, r.json()["job_id"])

    assert ingest(folder)["summary"]["ingested"] == 2
    doc = _document(url, "Normans.md")
    gone = httpx.delete(f"{url}/v1/documents/{doc['document_id']}").json()
    assert gone == {"deleted": doc["document_id"], "file_removed": False, "tombstone": True}
    assert (folder / "Normans.md").is_file()  # the operator's file is not the API's to delete
    again = ingest(folder)  # the folder again: the deleted file is left out
    assert again["files_total"] == 1 and _document(url, "Normans.md") is None
    ingest(folder / "Normans.md")  # named on purpose: readmitted
    assert _document(url, "Normans.md") is not None
    doc = _document(url, "Normans.md")
    httpx.delete(f"{url}/v1/documents/{doc['document_id']}")
    with (folder / "Normans.md").open("a") as f:
        f.write("\n\nA new paragraph about the Normans in Sicily.\n")
    changed = ingest(folder)  # other bytes: a new version, ingested
    assert changed["files_total"] == 2 and _document(url, "Normans.md") is not None


def test_an_upload_says_saved_when_its_bytes_are_in_the_inbox_but_not_stored(api):
    url, tmp = api
    inbox = tmp / "data" / "inbox"
    inbox.mkdir(parents=True)
    body = (DOCS / "release-notes.txt").read_bytes()
    (inbox / "notes.txt").write_bytes(body)  # in the inbox, never ingested
    r = upload(url, "notes.txt", body)
    assert r.status_code == 202, r.text
    assert r.json()["files"][0]["outcome"] == "saved"
    wait_job(url, r.json()["job"]["job_id"])
    doc = _document(url, "notes.txt")
    assert doc is not None
    r = upload(url, "notes.txt", body)
    assert r.json()["files"][0]["outcome"] == "unchanged"  # in the inbox and stored
    wait_job(url, r.json()["job"]["job_id"])
    # Deleted: the inbox copy goes with the points; the same bytes again are a new file.
    gone = httpx.delete(f"{url}/v1/documents/{doc['document_id']}").json()
    assert gone["file_removed"] is True and gone["tombstone"] is False
    assert not (inbox / "notes.txt").exists() and not list((inbox / ".erased").glob("*"))
    r = upload(url, "notes.txt", body)
    assert r.json()["files"][0]["outcome"] == "new"
    assert wait_job(url, r.json()["job"]["job_id"])["summary"]["ingested"] == 1
    assert _document(url, "notes.txt") is not None
