"""The API on the ingestion queue (RAG_BROKER_URL): POST /v1/ingest and uploads enqueue,
GET /v1/ingest/{job} reads the counts from Redis, /metrics shows the queue. With the
embedded store the API process is also the consumer (it owns the store)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx

from api.native.protocol import JobList, JobOut
from tests.conftest import DOCS, ROOT
from tests.helpers.api_process import ApiProcess

KEY = "queue-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _done(api: ApiProcess, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{api.url}/v1/ingest/{job_id}", headers=AUTH, timeout=10).json()
        if job["status"] == "done":
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_api_enqueues_reports_counts_and_answers_503_without_redis(tmp_path, redis_server):
    folder = tmp_path / "shared"
    folder.mkdir()
    for name in ("release-notes.txt", "reactor-update.eml", "Normans.md"):
        shutil.copy(DOCS / name, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    env = {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_API_KEYS": KEY,
        "RAG_INGEST_ROOTS": str(folder),
        "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "RAG_BROKER_URL": redis_server.url,
        "RAG_QUEUE_RESTORE_INTERVAL_S": "1",
    }
    api = ApiProcess(env, tmp_path / "api.log").start()
    try:
        answer = httpx.post(
            f"{api.url}/v1/ingest", headers=AUTH, timeout=30, json={"paths": [str(folder)]}
        )
        assert answer.status_code == 202, answer.text
        job = _done(api, answer.json()["job_id"])
        assert job["files_total"] == 4 and job["counts"]["done"] == 3
        assert job["counts"]["failed"] == 1
        # Named relative to the shared root (here RAG_INGEST_ROOTS itself: "."), not absolute.
        assert job["failures"][0]["path"] == "broken.pdf" and job["paths"] == ["."]
        listed = httpx.get(f"{api.url}/v1/ingest", headers=AUTH, timeout=10).json()
        assert listed["queue"] and listed["jobs"][0]["job_id"] == job["job_id"]
        # One shape whichever way ingestion runs (tests/api/test_jobs.py: in-process).
        assert JobOut.model_validate(job).files_finished == 4
        assert JobList.model_validate(listed).jobs[0].progress.files_done == 4
        assert set(job) == set(listed["jobs"][0]) == set(JobOut.model_fields) | {"files_finished"}
        docs = httpx.get(f"{api.url}/v1/documents", headers=AUTH, timeout=10).json()
        assert docs["total"] == 3
        metrics = httpx.get(f"{api.url}/metrics", headers=AUTH, timeout=10).text
        assert 'rag_ingest_queue_files_total{outcome="done"} 3.0' in metrics
        assert "rag_ingest_queue_depth 0.0" in metrics

        # The CLI pointed at this API (RAG_API_URL, no broker of its own) follows the job.
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        cli_env.update(RAG_API_URL=api.url, RAG_API_CLIENT_KEY=KEY)
        cli = subprocess.run(
            [sys.executable, "-m", "ingest", str(folder), "--json"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 1, cli.stderr  # the broken PDF
        summary = json.loads(cli.stdout)
        assert summary["unchanged"] == 3 and summary["failed"][0]["path"].endswith("broken.pdf")

        redis_server.stop()
        refused = httpx.post(
            f"{api.url}/v1/ingest", headers=AUTH, timeout=30, json={"paths": [str(folder)]}
        )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "queue_unavailable"
        upload = httpx.post(
            f"{api.url}/v1/documents",
            headers=AUTH,
            timeout=30,
            files={"files": ("late.txt", b"The late memo names Svalbard.")},
        )
        assert upload.status_code == 503
        assert (tmp_path / "data" / "inbox" / "late.txt").is_file()  # kept for later
        assert (
            httpx.get(f"{api.url}/v1/ingest/{job['job_id']}", headers=AUTH, timeout=30).status_code
            == 503
        )
        metrics = httpx.get(f"{api.url}/metrics", headers=AUTH, timeout=10).text
        assert "rag_ingest_queue_depth NaN" in metrics
        # A counter holds the last value read while Redis is away; it never drops to zero.
        assert 'rag_ingest_queue_files_total{outcome="done"} 3.0' in metrics
    finally:
        api.stop()
    # Redis back, the API restarted: the inbox file left by the refused upload is ingested.
    redis_server.start()
    api = ApiProcess(env, tmp_path / "api2.log").start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            docs = httpx.get(f"{api.url}/v1/documents", headers=AUTH, timeout=10).json()
            if docs["total"] == 4:
                break
            time.sleep(0.5)
        assert any(d["source"].endswith("late.txt") for d in docs["documents"])
    finally:
        api.stop()
