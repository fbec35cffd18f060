"""Ingestion jobs hosted by the API process, which owns the embedded store.

Embedded Qdrant admits one process per folder, so in the default (embedded) mode the API
runs the ingestion worker itself, one job at a time on a background thread, and records each
job as JSON under ``<data_dir>/jobs`` so its outcome survives a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ingest.worker import IngestWorker

log = logging.getLogger(__name__)


class JobManager:
    def __init__(self, worker: IngestWorker, folder: Path) -> None:
        self.worker = worker
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self.on_finish: Callable[[dict[str, Any]], None] | None = None  # metrics hook

    def submit(self, paths: list[str], prune: bool) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        job = {"job_id": job_id, "status": "queued", "paths": paths, "prune": prune,
               "created_at": time.time(), "started_at": None, "finished_at": None,
               "progress": {"files_total": None, "files_done": 0, "tokens": 0},
               "summary": None, "error": None}
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
            return json.loads(path.read_text())
        return None

    def queue_depth(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j["status"] in ("queued", "running"))

    def shutdown(self) -> None:
        """Stop after the current file; a half-done job is marked so and can be re-run."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

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
        self._update(job_id, status="running", started_at=time.time())
        job = self._jobs[job_id]

        def progress(event: str, detail: dict[str, Any]) -> None:
            with self._lock:
                p = job["progress"]
                if event == "start":
                    p["files_total"] = detail["files"]
                elif event == "file":
                    p["files_done"] += 1
                elif event == "tokens":
                    p["tokens"] += detail["tokens"]

        try:
            summary = self.worker.run([Path(p) for p in job["paths"]], prune=job["prune"],
                                      progress=progress, should_stop=self._stopping.is_set)
            status = "stopped" if self._stopping.is_set() else "done"
            self._update(job_id, status=status, summary=summary.as_dict(),
                         finished_at=time.time())
            if self.on_finish is not None:
                self.on_finish(summary.as_dict())
        except Exception as exc:  # report, never kill the API
            log.exception("ingest job %s failed", job_id)
            self._update(job_id, status="failed", error=f"{type(exc).__name__}: {exc}",
                         finished_at=time.time())
