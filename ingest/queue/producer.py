"""The queue's producer: a job from files and folders, sent to the workers as tasks.

Where files live: a worker on another machine cannot read the operator's local path, so a
job may only name paths under the **shared roots** (``RAG_INBOX_DIR`` and
``RAG_INGEST_ROOTS``), which every worker mounts at the same place (the inbox volume, an
NFS mount); anything else is refused here with a clear error, and a worker that still
cannot read a file fails it with the reason. Uploads are saved into the inbox first.

Small files travel together (up to ``RAG_QUEUE_BATCH_FILES`` files or
``RAG_QUEUE_BATCH_MB``), so one task embeds several files' passages in one batch; a larger
file is a task of its own.

A job lists each file once, by its real path: the same folder twice, a folder and its own
subfolder, the same file twice or one file by two spellings (a link, ``a/../a``) make one
file, named as it was first reached; ``files_total`` is the distinct files. Files whose
document was deleted are left out of folder walks while they hold the erased bytes
(``ingest.erasure``); a file named on purpose is readmitted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from kombu.exceptions import OperationalError

from ingest.erasure import Tombstones
from ingest.files.access import JobAccess
from ingest.files.confine import NoSuchPath, OutsideRoots, Roots
from ingest.files.identity import display_path
from ingest.files.walk import WalkProblem, iter_files
from ingest.queue.app import INGEST_TASK, PRUNE_TASK, make_celery, redis_prefix
from ingest.queue.job_board import JobBoard, JobStatus, QueueUnavailable
from rag import tracing
from rag.settings import Settings

_PUBLISH_RETRY = {
    "max_retries": 2,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class OutsideSharedRoots(OutsideRoots, ValueError):
    """A path the workers may not be able to read."""


@dataclass(frozen=True)
class Batch:
    paths: list[str]
    size_bytes: int


def batches(files: Iterable[tuple[str, int]], max_files: int, max_bytes: int) -> list[Batch]:
    """Consecutive small files grouped; a file of ``max_bytes`` or more goes alone."""
    out: list[Batch] = []
    current: list[str] = []
    size = 0
    for path, nbytes in files:
        if nbytes >= max_bytes:
            out.append(Batch([path], nbytes))
            continue
        if current and (len(current) >= max_files or size + nbytes > max_bytes):
            out.append(Batch(current, size))
            current, size = [], 0
        current.append(path)
        size += nbytes
    if current:
        out.append(Batch(current, size))
    return out


class Producer:
    """Enqueues jobs; one per process (it holds a broker connection pool)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.broker_url:
            raise ValueError("RAG_BROKER_URL is not set")
        self.settings = settings
        self.board = JobBoard.connect(
            settings.broker_url,
            redis_prefix(settings.collection),
            sentinel_master=settings.queue_sentinel_master,
        )
        self.app = make_celery(settings.queue)
        self.roots = Roots.of(settings.api_ingest_roots)

    def check_paths(self, paths: list[Path]) -> list[Path]:
        """Absolute paths, each under a shared root and present (``OutsideSharedRoots``,
        ``NoSuchPath`` otherwise; see ``Roots.admit``)."""
        try:
            return self.roots.admit(paths)
        except OutsideRoots as exc:
            shared = ", ".join(str(r) for r in self.settings.api_ingest_roots)
            raise OutsideSharedRoots(
                f"{display_path(Path(exc.path).absolute())[:200]} is not under a shared root "
                f"the workers can read ({shared}): put it there, or add its folder to "
                "RAG_INGEST_ROOTS on every worker",
                exc.path,
            ) from exc
        except NoSuchPath as exc:
            raise NoSuchPath(display_path(Path(exc.path).absolute())) from exc

    def submit(
        self,
        paths: list[Path],
        prune: bool = False,
        origin: str = "cli",
        owner: str = "",
        access: JobAccess | None = None,
    ) -> JobStatus:
        """``access``: the job's access fields and owner, carried by each of its tasks (a
        task without them, sent by an earlier version, stamps what nothing-given means)."""
        roots = self.check_paths(paths)
        self.board.ping()  # before any work: a clear error, nothing half-sent
        tombstones = Tombstones(self.settings.inbox)
        tombstones.readmit(roots)  # a file named on purpose is ingested, deleted or not
        files, problems = self.walk(roots, tombstones.walk_filter())
        planned = batches(
            files, self.settings.queue_batch_files, int(self.settings.queue_batch_mb * 1_000_000)
        )
        job_id = uuid.uuid4().hex
        names = [p for p, _ in files] + [display_path(p.path) for p in problems]
        task_ids = [uuid.uuid4().hex for _ in range(len(planned) + int(prune))]
        try:
            self.board.create(
                job_id,
                origin=origin,
                owner=owner,
                paths=[display_path(r) for r in roots],
                prune=prune,
                files=names,
                tasks=task_ids,
            )
            for problem in problems:
                path = display_path(problem.path)
                self.board.move(job_id, [path], "failed", problem.reason)
                self.board.dead_letter(job_id, path, problem.reason)
            # The trace context (W3C traceparent) rides in each task's headers: a worker's
            # spans join the trace of the request that enqueued them (ingest.queue.tasks).
            trace_headers = tracing.inject({})
            with self.app.producer_or_acquire() as producer:
                for batch, task_id in zip(planned, task_ids):
                    self.app.send_task(
                        INGEST_TASK,
                        args=[job_id, batch.paths],
                        kwargs={"access": access.to_json()} if access is not None else {},
                        headers=trace_headers,
                        task_id=task_id,
                        queue=self.settings.queue_name,
                        producer=producer,
                        retry=True,
                        retry_policy=_PUBLISH_RETRY,
                    )
                if prune:
                    self.app.send_task(
                        PRUNE_TASK,
                        args=[job_id, [str(r) for r in roots]],
                        headers=trace_headers,
                        task_id=task_ids[-1],
                        queue=self.settings.queue_name,
                        producer=producer,
                        retry=True,
                        retry_policy=_PUBLISH_RETRY,
                    )
            self.board.mark_enqueued(job_id)
        except (OperationalError, OSError, QueueUnavailable, redis.RedisError) as exc:
            raise QueueUnavailable(
                f"the ingestion queue (Redis) failed while job {job_id} was being enqueued: "
                f"{exc}; run the same command again when it is back (files already stored "
                "are skipped)"
            ) from exc
        status = self.board.get(job_id)
        assert status is not None
        return status

    def walk(
        self, roots: list[Path], erased: Callable[[Path], bool]
    ) -> tuple[list[tuple[str, int]], list[WalkProblem]]:
        """The distinct files under ``roots`` (display path as first reached, size), those
        ``erased`` left out, and the problems met (each path once)."""
        files: list[tuple[str, int]] = []
        problems: list[WalkProblem] = []
        seen: set[str] = set()  # real paths of files, display paths of problems
        for root in roots:
            for item in iter_files(root, self.roots):
                if isinstance(item, WalkProblem):
                    name = display_path(item.path)
                    if name not in seen:
                        seen.add(name)
                        problems.append(item)
                    continue
                real = os.path.realpath(item)
                if real in seen:
                    continue  # another name of a file this job has already
                seen.add(real)
                if erased(item):
                    continue
                try:
                    files.append((display_path(item), item.stat().st_size))
                except OSError as exc:
                    problems.append(WalkProblem(item, f"cannot inspect: {exc.strerror or exc}"))
        return files, problems

    def get(self, job_id: str) -> JobStatus | None:
        return self.board.get(job_id)

    def queue_depth(self) -> int:
        """Tasks waiting in Redis (not those reserved by workers)."""
        return int(self.board.redis.llen(self.settings.queue_name))

    def close(self) -> None:
        self.app.close()
        self.board.redis.close()
