"""Ingestion jobs hosted by the API process, which owns the embedded store.

Embedded Qdrant admits one process per folder, so in the default (embedded) mode the API
runs the ingestion worker itself, one job at a time on a background thread, and records each
job as JSON under ``<data_dir>/jobs`` so its outcome survives a restart.

No job is lost to a crash: at start (``start``) every job a previous process left queued,
running or interrupted is queued again (ingestion is idempotent: files already stored are
skipped by hash), up to ``MAX_ATTEMPTS`` starts, after which it is marked failed with the
reason; and every file waiting in the inbox is queued too (an upload saved just before a
crash). A graceful shutdown marks the running job ``interrupted`` for the same treatment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api.uploads import inbox_has_files
from ingest.indexer import Indexer

log = logging.getLogger(__name__)

#: Starts of one job before it is given up (a job that keeps killing its process).
MAX_ATTEMPTS = 3
_UNFINISHED = ("queued", "running", "interrupted")


class JobManager:
    def __init__(self, worker: Indexer, folder: Path, inbox: Path | None = None) -> None:
        self.worker = worker
        self.folder = folder
        self.inbox = inbox
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self.on_finish: Callable[[dict[str, Any]], None] | None = None  # metrics hook

    # --- public ----------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Pick up what a previous process left: unfinished jobs, then the inbox. Returns
        the ids of the jobs queued."""
        queued = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("unreadable job record %s", path.name)
                continue
            if job.get("status") not in _UNFINISHED or job["job_id"] in self._jobs:
                continue
            attempts = int(job.get("attempts", 1))
            if attempts >= MAX_ATTEMPTS:
                job.update(
                    status="failed",
                    finished_at=time.time(),
                    error=f"the service stopped {attempts} times while running this "
                    "job; not retried (see the log for the file it was on)",
                )
                self._save(job)
                continue
            job.update(status="queued", attempts=attempts + 1, resumed_at=time.time())
            with self._lock:
                self._jobs[job["job_id"]] = job
            self._save(job)
            self._pool.submit(self._run, job["job_id"])
            queued.append(job["job_id"])
        if queued:
            log.warning("resumed %d unfinished ingest job(s): %s", len(queued), ", ".join(queued))
        if self.inbox is not None and inbox_has_files(self.inbox):
            queued.append(
                self.submit([str(self.inbox.absolute())], prune=False, origin="inbox")["job_id"]
            )
        return queued

    def submit(self, paths: list[str], prune: bool, origin: str = "request") -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        job = {
            "job_id": job_id,
            "status": "queued",
            "paths": paths,
            "prune": prune,
            "origin": origin,
            "attempts": 1,
            "created_at": time.time(),
            "started_at": None,
            "finished_at": None,
            "progress": {"files_total": None, "files_done": 0, "tokens": 0},
            "summary": None,
            "error": None,
        }
        with self._lock:
            self._jobs[job_id] = job
        self._save(job)
        self._pool.submit(self._run, job_id)
        return dict(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return json.loads(json.dumps(job))
        path = self.folder / f"{job_id}.json"
        if len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id) and path.is_file():
            job = json.loads(path.read_text())
            if job.get("status") in _UNFINISHED:
                # Not in this process, which is the only one that runs jobs on this store:
                # nobody runs it now. Say so instead of "running".
                job["status"] = "interrupted"
            return job
        return None

    def queue_depth(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j["status"] in ("queued", "running"))

    def shutdown(self) -> None:
        """Stop after the current file; a half-done job is marked interrupted and resumes at
        the next start."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- internals -------------------------------------------------------------------------
    def _save(self, job: dict[str, Any]) -> None:
        tmp = self.folder / f".{job['job_id']}.tmp"
        tmp.write_text(json.dumps(job, indent=2))
        tmp.replace(self.folder / f"{job['job_id']}.json")

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self._jobs[job_id]
            job.update(changes)
            snapshot = json.loads(json.dumps(job))
        self._save(snapshot)

    def _run(self, job_id: str) -> None:
        if self._stopping.is_set():
            return  # stays queued on disk: resumed at the next start
        self._update(job_id, status="running", started_at=time.time())
        job = self._jobs[job_id]

        def progress(event: str, detail: dict[str, Any]) -> None:
            with self._lock:
                p = job["progress"]
                if event == "start":
                    p["files_total"] = detail["files"]
                    p["files_done"] = 0
                elif event == "file":
                    p["files_done"] += 1
                elif event == "tokens":
                    p["tokens"] += detail["tokens"]

        try:
            summary = self.worker.run(
                [Path(p) for p in job["paths"]],
                prune=job["prune"],
                progress=progress,
                should_stop=self._stopping.is_set,
            )
            status = "interrupted" if self._stopping.is_set() else "done"
            self._update(
                job_id,
                status=status,
                summary=summary.as_dict(),
                finished_at=None if status == "interrupted" else time.time(),
            )
            if self.on_finish is not None:
                self.on_finish(summary.as_dict())
        except Exception as exc:  # report, never kill the API
            log.exception("ingest job %s failed", job_id)
            self._update(
                job_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                finished_at=time.time(),
            )
