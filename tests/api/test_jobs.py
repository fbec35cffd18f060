"""No ingest job is lost to a crash: kill -9 the API mid-job, start it again, and the job
and the files waiting in the inbox are finished (a real process, really killed)."""

import shutil
import time

import httpx

from api.native.protocol import JobList, JobOut
from tests.conftest import DOCS
from tests.helpers.api_process import ApiProcess
from tests.helpers.docx import write_compressible_docx

KEY = "jobs-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: The top-level keys of a job, in-process or queued.
JOB_KEYS = set(JobOut.model_fields) | {"files_finished"}


def wait(url, job_id, statuses=("done", "failed"), timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/ingest/{job_id}", headers=AUTH, timeout=10).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job stayed {job['status']}")


def test_kill_9_mid_job_then_restart_finishes_the_job_and_the_inbox(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    # A slow file first keeps the job running long enough to be killed inside it.
    write_compressible_docx(folder / "a-slow.docx", 20_000)
    for name in ("release-notes.txt", "reactor-update.eml", "Normans.md"):
        shutil.copy(DOCS / name, folder)
    env = {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_API_KEYS": KEY,
        "RAG_INGEST_ROOTS": str(folder),
        "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
    }
    api = ApiProcess(env, tmp_path / "api.log").start()
    try:
        # An upload whose job will be lost too: saved in the inbox, then the crash.
        job_id = httpx.post(
            f"{api.url}/v1/ingest", headers=AUTH, json={"paths": [str(folder)]}
        ).json()["job_id"]
        wait(api.url, job_id, statuses=("running",))
        time.sleep(0.5)
        api.kill9()
        inbox = tmp_path / "data" / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "oxygen.md").write_text(
            "# Oxygen\n\nOxygen is the chemical element with symbol O. " * 20
        )  # saved, never queued
        record = (tmp_path / "data" / "jobs" / f"{job_id}.json").read_text()
        assert '"status": "running"' in record  # what the dead process left
        api.start()
        job = wait(api.url, job_id)
        assert job["status"] == "done" and job["attempts"] == 2
        assert job["summary"]["failed"] == []
        assert JobOut.model_validate(job).counts.done + job["counts"]["unchanged"] == 4
        # Listed, newest first, in the one shape (the inbox job queued at start is newer).
        listed = httpx.get(f"{api.url}/v1/ingest", headers=AUTH, timeout=10).json()
        assert listed["queue"] is False
        assert job_id in [j.job_id for j in JobList.model_validate(listed).jobs]
        assert set(listed["jobs"][0]) == set(job) == JOB_KEYS
        docs = httpx.get(f"{api.url}/v1/documents", headers=AUTH).json()["documents"]
        names = sorted(d["source"].rsplit("/", 1)[-1] for d in docs)
        deadline = time.monotonic() + 120
        while "oxygen.md" not in names and time.monotonic() < deadline:
            time.sleep(0.5)  # the inbox job queued at start
            docs = httpx.get(f"{api.url}/v1/documents", headers=AUTH).json()["documents"]
            names = sorted(d["source"].rsplit("/", 1)[-1] for d in docs)
        assert names == [
            "Normans.md",
            "a-slow.docx",
            "oxygen.md",
            "reactor-update.eml",
            "release-notes.txt",
        ]
    finally:
        api.stop()


def test_a_job_no_process_runs_is_never_reported_running(tmp_path):
    """A record left 'running' by a dead process reads 'interrupted', never 'running'."""
    import json

    from ingest.jobs.inprocess import JobManager

    folder = tmp_path / "jobs"
    folder.mkdir()
    job_id = "a" * 32
    (folder / f"{job_id}.json").write_text(
        json.dumps({"job_id": job_id, "status": "running", "paths": [], "prune": False})
    )
    manager = JobManager(worker=None, folder=folder)  # type: ignore[arg-type]
    job = manager.get(job_id)
    assert job is not None and job.status == "interrupted"
    assert [j.job_id for j in manager.recent()] == [job_id]


def test_a_job_that_keeps_killing_its_process_is_given_up(tmp_path):
    import json

    from ingest.jobs.inprocess import MAX_ATTEMPTS, JobManager

    folder = tmp_path / "jobs"
    folder.mkdir()
    job_id = "b" * 32
    (folder / f"{job_id}.json").write_text(
        json.dumps(
            {
                "job_id": job_id,
                "status": "running",
                "paths": [],
                "prune": False,
                "attempts": MAX_ATTEMPTS,
            }
        )
    )
    manager = JobManager(worker=None, folder=folder)  # type: ignore[arg-type]
    assert manager.start() == []
    job = manager.get(job_id)
    assert job is not None and job.status == "failed" and "not retried" in (job.error or "")


def test_in_process_and_queued_jobs_have_one_shape(tmp_path):
    """An in-process record (as earlier versions wrote it) and a queue job board record
    show the same keys, and the counts mean the same."""
    from ingest.jobs.inprocess import view_of as in_process
    from ingest.jobs.queued import view_of as queued
    from ingest.queue.job_board import JobStatus

    record = {
        "job_id": "c" * 32,
        "status": "done",
        "paths": ["/in"],
        "prune": False,
        "origin": "request",
        "attempts": 1,
        "created_at": 1.0,
        "started_at": 2.0,
        "finished_at": 3.0,
        "progress": {"files_total": 3, "files_done": 3, "tokens": 10},
        "summary": {
            "files_seen": 3,
            "ingested": 1,
            "unchanged": 1,
            "removed": 0,
            "failed": [{"path": "/in/x.pdf", "error": "broken"}],
        },
        "error": None,
    }
    board = JobStatus(
        job_id="d" * 32,
        status="done",
        origin="request",
        paths=["/in"],
        prune=False,
        created_at=1.0,
        finished_at=3.0,
        files_total=3,
        tasks_total=2,
        counts={"queued": 0, "running": 0, "retrying": 0, "done": 1, "unchanged": 1, "failed": 1},
        failures=[{"path": "/in/x.pdf", "error": "broken"}],
    )
    mine, theirs = in_process(record).model_dump(), queued(board).model_dump()  # type: ignore[arg-type]
    assert set(mine) == set(theirs) == JOB_KEYS
    for key in ("counts", "files_total", "files_finished", "failures", "removed"):
        assert mine[key] == theirs[key], key
    running = in_process({**record, "status": "running", "summary": None})  # type: ignore[typeddict-item]
    assert (running.counts.queued, running.counts.running, running.files_total) == (0, 3, 3)


def test_a_deleted_upload_stays_deleted_across_restarts_and_a_crash_mid_delete(tmp_path):
    """12 documents -> delete 2 -> restart -> 14 was the bug: the inbox kept the files."""
    from ingest.erasure import Tombstones

    env = {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_API_KEYS": KEY,
        "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
    }
    inbox = tmp_path / "data" / "inbox"
    names = ("release-notes.txt", "reactor-update.eml", "Normans.md")
    api = ApiProcess(env, tmp_path / "api.log").start()
    try:
        files = [("files", (n, (DOCS / n).read_bytes())) for n in names]
        r = httpx.post(f"{api.url}/v1/documents", headers=AUTH, files=files, timeout=60)
        assert r.status_code == 202, r.text
        wait(api.url, r.json()["job"]["job_id"])
        docs = {
            d["source"].rsplit("/", 1)[-1]: d
            for d in httpx.get(f"{api.url}/v1/documents", headers=AUTH).json()["documents"]
        }
        assert sorted(docs) == sorted(names)
        gone = httpx.delete(
            f"{api.url}/v1/documents/{docs['Normans.md']['document_id']}", headers=AUTH
        )
        assert gone.json()["file_removed"] is True and not (inbox / "Normans.md").exists()
        # A process that dies mid-delete: the tombstone is written, the points and the file
        # are still there (what erase does first, then the crash).
        Tombstones(inbox).write(inbox / "reactor-update.eml")
        api.kill9()
        api.start()  # the inbox is queued again at start (a job made before serving)
        for job in httpx.get(f"{api.url}/v1/ingest", headers=AUTH).json()["jobs"]:
            wait(api.url, job["job_id"])
        listed = httpx.get(f"{api.url}/v1/documents", headers=AUTH).json()
        assert [d["source"].rsplit("/", 1)[-1] for d in listed["documents"]] == [
            "release-notes.txt"
        ]
        assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == [
            "release-notes.txt"
        ]
        assert Tombstones(inbox).all() == []
        # The same bytes uploaded again are a new file, and ingested.
        r = httpx.post(
            f"{api.url}/v1/documents",
            headers=AUTH,
            files={"files": ("Normans.md", (DOCS / "Normans.md").read_bytes())},
            timeout=60,
        )
        assert r.json()["files"][0]["outcome"] == "new"
        assert wait(api.url, r.json()["job"]["job_id"])["summary"]["ingested"] == 1
    finally:
        api.stop()


def test_distinct_roots_and_path_names(tmp_path):
    import os

    from ingest.jobs.inprocess import distinct_roots
    from ingest.jobs.service import FileProblem, JobView, PathNames

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for path in (folder / "a.txt", folder / "sub" / "b.txt", folder / ".hidden" / "c.txt"):
        path.write_text("x")
    os.symlink(folder / "a.txt", tmp_path / "alias.txt")
    given = [
        folder / "sub",
        folder,
        folder / "a.txt",
        tmp_path / "alias.txt",
        folder / ".." / "in",
        folder / ".hidden" / "c.txt",  # a walk of the folder skips hidden ones: kept
    ]
    assert distinct_roots(given) == [folder, folder / ".hidden" / "c.txt"]
    assert distinct_roots([tmp_path / "alias.txt", folder / "a.txt"]) == [tmp_path / "alias.txt"]

    names = PathNames([tmp_path / "data" / "inbox", tmp_path])
    view = JobView(
        job_id="e" * 32,
        status="done",
        paths=[str(tmp_path), str(tmp_path / "data" / "inbox" / "up.pdf")],
        failures=[FileProblem(path=str(folder / "sub" / "b.txt"), error="broken")],
        summary={"failed": [{"path": str(folder / "a.txt"), "error": "e"}], "warnings": []},
    )
    shown = names.view(view)
    assert shown.paths == [".", "up.pdf"]
    assert shown.failures[0].path == "in/sub/b.txt"
    assert shown.summary == {"failed": [{"path": "in/a.txt", "error": "e"}], "warnings": []}
    assert names.name("/elsewhere/secret/report.pdf") == "report.pdf"
