"""Ingestion jobs hosted by the API process, which owns the embedded store.

Embedded Qdrant admits one process per folder, so in the default (embedded) mode the API
runs the ingestion worker itself, one job at a time on a background thread, and records each
job as JSON under ``<data_dir>/jobs`` so its outcome survives a restart.

No job is lost to a crash: at start (``start``) every job a previous process left queued,
running or interrupted is queued again (ingestion is idempotent: files already stored are
skipped by hash), up to ``MAX_ATTEMPTS`` starts, after which it is marked failed with the
reason; and every file waiting in the inbox is queued too (an upload saved just before a
crash). A graceful shutdown marks the running job ``interrupted`` for the same treatment.

Why one module of ~370 lines: the job records, the worker thread and the resume at start
share one lock and one folder; their invariants (a job is written before it runs, every
state change is persisted before it is reported) are checked in one place.

A job is kept as a ``JobRecord``, the JSON of its file (the format earlier versions wrote),
and shown as a ``JobView`` (``view_of``): counts from its progress while it runs, from its
summary once it ends; its paths relative to the shared roots (``PathNames``).

A job names each file or folder once (``distinct_roots``: the same path twice, a folder
and its own subfolder, two spellings of one file are one), and its walk leaves out files
whose document was deleted (``ingest.erasure``), which the start also finishes erasing.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict, cast

from ingest.erasure import Tombstones
from ingest.files.access import JobAccess
from ingest.jobs.service import (
    FAILURES_SHOWN,
    FileCounts,
    FileProblem,
    FinishHook,
    JobView,
    PathNames,
    inbox_has_files,
)
from ingest.progress import FileDone, ProgressEvent, RunStarted, TokensEmbedded

if TYPE_CHECKING:
    from ingest.indexer import Indexer

log = logging.getLogger(__name__)

#: Starts of one job before it is given up (a job that keeps killing its process).
MAX_ATTEMPTS = 3
_UNFINISHED = ("queued", "running", "interrupted")
#: A record's file may be stamped a little before its ``created_at`` (coarse clocks).
_MTIME_SLACK_S = 2.0


class RecordProgress(TypedDict):
    files_total: int | None
    files_done: int
    tokens: int


class JobRecord(TypedDict, total=False):
    """A job as stored in ``<folder>/<job_id>.json``; keys added over time are optional."""

    job_id: Required[str]
    status: Required[str]
    paths: list[str]
    prune: bool
    origin: str
    owner: str
    access: dict[str, Any] | None  # ``JobAccess.to_json``: the job's access fields
    attempts: int
    created_at: float
    started_at: float | None
    resumed_at: float
    finished_at: float | None
    progress: RecordProgress
    summary: dict[str, Any] | None
    error: str | None


class JobManager:
    on_queue = False

    def __init__(
        self,
        worker: Indexer,
        folder: Path,
        inbox: Path | None = None,
        roots: Sequence[Path] | None = None,
    ) -> None:
        """``roots``: the shared roots views name paths against (default: the worker's
        allowed roots)."""
        self.worker = worker
        self.folder = folder
        self.inbox = inbox
        self.tombstones = Tombstones(inbox) if inbox is not None else None
        shown = roots if roots is not None else getattr(worker, "allowed_roots", None)
        self.names = PathNames(shown or [])
        self.folder.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")
        self.on_finish: FinishHook | None = None  # metrics hook

    # --- public ----------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Pick up what a previous process left: unfinished jobs, then the inbox. Returns
        the ids of the jobs queued."""
        queued = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            job = _load(path)
            if job is None or job["status"] not in _UNFINISHED or job["job_id"] in self._jobs:
                continue
            attempts = int(job.get("attempts", 1))
            if attempts >= MAX_ATTEMPTS:
                job["status"] = "failed"
                job["finished_at"] = time.time()
                job["error"] = (
                    f"the service stopped {attempts} times while running this "
                    "job; not retried (see the log for the file it was on)"
                )
                self._save(job)
                continue
            job.update({"status": "queued", "attempts": attempts + 1, "resumed_at": time.time()})
            with self._lock:
                self._jobs[job["job_id"]] = job
            self._save(job)
            self._pool.submit(self._run, job["job_id"])
            queued.append(job["job_id"])
        if queued:
            log.warning("resumed %d unfinished ingest job(s): %s", len(queued), ", ".join(queued))
        if self.tombstones is not None:  # before the inbox is read again
            self.tombstones.resume(self.worker.store.documents.delete_document)
        if self.inbox is not None and inbox_has_files(self.inbox):
            queued.append(self.submit([self.inbox], prune=False, origin="inbox").job_id)
        return queued

    def submit(
        self,
        paths: Sequence[str | Path],
        prune: bool,
        origin: str = "request",
        owner: str = "",
        access: JobAccess | None = None,
    ) -> JobView:
        """Queue a job on paths inside the worker's roots (``Roots.admit``), each once
        (``distinct_roots``); a file named itself is readmitted if its document was
        deleted."""
        admitted = distinct_roots(self.worker.confinement(Path(p) for p in paths).admit(paths))
        if self.tombstones is not None:
            self.tombstones.readmit(admitted)
        job_id = uuid.uuid4().hex
        job: JobRecord = {
            "job_id": job_id,
            "status": "queued",
            "paths": [str(p) for p in admitted],
            "prune": prune,
            "origin": origin,
            "owner": owner,
            "access": access.to_json() if access is not None else None,
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
            view = self.names.view(view_of(job))
        self._save(job)
        self._pool.submit(self._run, job_id)
        return view

    def get(self, job_id: str) -> JobView | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return self.names.view(view_of(job))
        path = self.folder / f"{job_id}.json"
        if len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id) and path.is_file():
            stored = _load(path)
            return self._stored_view(stored) if stored else None
        return None

    def recent(self, limit: int = 20) -> list[JobView]:
        """The ``limit`` latest jobs by creation, newest first: this process's and those on
        disk. Files are read newest first and reading stops once a file is older than the
        ``limit``-th job found (a record is written after its job is created)."""
        with self._lock:
            live = {job_id: self.names.view(view_of(job)) for job_id, job in self._jobs.items()}
        found = list(live.values())
        stamped = []
        for path in self.folder.glob("*.json"):
            try:
                stamped.append((path.stat().st_mtime, path))
            except OSError:
                continue  # removed meanwhile
        for mtime, path in sorted(stamped, key=lambda s: s[0], reverse=True):
            if path.stem in live:
                continue
            latest = heapq.nlargest(limit, (j.created_at for j in found))
            if len(latest) == limit and mtime < latest[-1] - _MTIME_SLACK_S:
                break
            stored = _load(path)
            if stored is not None:
                found.append(self._stored_view(stored))
        return sorted(found, key=lambda j: j.created_at, reverse=True)[:limit]

    def queue_depth(self) -> float:
        with self._lock:
            return float(
                sum(1 for j in self._jobs.values() if j["status"] in ("queued", "running"))
            )

    def outcomes(self) -> dict[str, int]:
        return {}  # each finished job reports to ``on_finish`` instead

    def shutdown(self) -> None:
        """Stop after the current file; a half-done job is marked interrupted and resumes at
        the next start."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- internals -------------------------------------------------------------------------
    def _stored_view(self, job: JobRecord) -> JobView:
        if job["status"] in _UNFINISHED:
            # Not in this process, which is the only one that runs jobs on this store:
            # nobody runs it now. Say so instead of "running".
            job["status"] = "interrupted"
        return self.names.view(view_of(job))

    def _save(self, job: JobRecord) -> None:
        tmp = self.folder / f".{job['job_id']}.tmp"
        tmp.write_text(json.dumps(job, indent=2))
        tmp.replace(self.folder / f"{job['job_id']}.json")

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self._jobs[job_id]
            job.update(cast(JobRecord, changes))
            snapshot = cast(JobRecord, json.loads(json.dumps(job)))
        self._save(snapshot)

    def _run(self, job_id: str) -> None:
        if self._stopping.is_set():
            return  # stays queued on disk: resumed at the next start
        self._update(job_id, status="running", started_at=time.time())
        job = self._jobs[job_id]

        def progress(event: ProgressEvent) -> None:
            with self._lock:
                p = job["progress"]
                match event:
                    case RunStarted(files=files):
                        p["files_total"] = files
                        p["files_done"] = 0
                    case FileDone():
                        p["files_done"] += 1
                    case TokensEmbedded(tokens=tokens):
                        p["tokens"] += tokens

        try:
            erased = self.tombstones.walk_filter() if self.tombstones is not None else None
            summary = self.worker.run(
                [Path(p) for p in job["paths"]],
                prune=job["prune"],
                progress=progress,
                should_stop=self._stopping.is_set,
                exclude=erased,
                access=JobAccess.from_json(job.get("access")),
            )
            status = "interrupted" if self._stopping.is_set() else "done"
            self._update(
                job_id,
                status=status,
                summary=summary.as_dict(),
                finished_at=None if status == "interrupted" else time.time(),
            )
            if self.on_finish is not None:
                self.on_finish(summary)
        except Exception as exc:  # report, never kill the API
            log.exception("ingest job %s failed", job_id)
            self._update(
                job_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                finished_at=time.time(),
            )


def distinct_roots(paths: Sequence[Path]) -> list[Path]:
    """Each file or folder once, in the order given: a path whose real path is an earlier
    one's, or lies inside another's folder (reached by that folder's walk: no hidden folder
    on the way), is left out."""
    reals = [os.path.realpath(p) for p in paths]
    kept = []
    for i, (path, real) in enumerate(zip(paths, reals)):
        if any(
            (real == other and j < i) or _walked_under(real, other)
            for j, other in enumerate(reals)
            if j != i
        ):
            continue
        kept.append(path)
    return kept


def _walked_under(real: str, folder: str) -> bool:
    prefix = folder.rstrip("/") + "/"
    if real == folder or not real.startswith(prefix):
        return False
    return not any(part.startswith(".") for part in real[len(prefix) :].split("/"))


def _load(path: Path) -> JobRecord | None:
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("unreadable job record %s", path.name)
        return None
    if not isinstance(job, dict) or "job_id" not in job or "status" not in job:
        log.warning("not a job record: %s", path.name)
        return None
    return cast(JobRecord, job)


def view_of(job: JobRecord) -> JobView:
    """The record in the one job shape. Until its summary exists, a running job's files
    read so far are ``running`` (their outcomes are known when the run ends) and the rest
    ``queued``; a finished job's counts are its summary's."""
    progress = job.get("progress") or {"files_total": None, "files_done": 0, "tokens": 0}
    summary = job.get("summary")
    total = progress.get("files_total") or 0
    failures: list[FileProblem] = []
    if summary is not None:
        failures = [FileProblem.model_validate(f) for f in summary.get("failed", [])]
        counts = FileCounts(
            done=summary.get("ingested", 0),
            unchanged=summary.get("unchanged", 0),
            failed=len(failures),
        )
        finished = counts.done + counts.unchanged + counts.failed
        if job["status"] == "interrupted":  # what it has not reached waits for the resume
            counts = counts.model_copy(update={"queued": max(total - finished, 0)})
        total = max(total, finished)  # files the walk could not list are failures too
    elif job["status"] == "running":
        done = progress.get("files_done", 0)
        counts = FileCounts(queued=max(total - done, 0), running=done)
    else:
        counts = FileCounts()
    return JobView.model_validate(
        {
            **job,
            "files_total": total,
            "tasks_total": 1,
            "counts": counts,
            "removed": (summary or {}).get("removed", 0),
            "failures": failures[:FAILURES_SHOWN],
        }
    )
