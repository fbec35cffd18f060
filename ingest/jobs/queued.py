"""Ingestion jobs on the queue (RAG_BROKER_URL), a ``JobService`` like ``JobManager``.

The API enqueues (``POST /v1/ingest``, uploads) and reads job counts from the job board in
Redis; workers run the tasks. With the embedded store the API process owns the store, so it
is also the queue's consumer (Celery's worker on a thread, ``RAG_QUEUE_CONCURRENCY`` tasks at
once); with a Qdrant server it only produces, and ``python -m ingest --worker`` processes
consume. Redis being down is a ``QueueUnavailable`` (HTTP 503), never a lost request: an
upload is already saved in the inbox and is enqueued again at the next start.

A job's view is the job board's ``JobStatus`` with the in-process fields filled where the
queue knows them (``progress`` from the counts), so it reads like an in-process one, its
paths relative to the shared roots (``PathNames``; the board and the CLI keep them
absolute). ``outcomes`` are counters: while Redis is away they hold the last totals read,
never drop to zero.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ingest.erasure import Tombstones
from ingest.files.access import JobAccess
from ingest.jobs.service import FinishHook, JobProgress, JobView, PathNames, inbox_has_files
from ingest.queue.consumer import Consumer, queue_ingest_worker, start_consumer
from ingest.queue.job_board import JobStatus, QueueUnavailable
from ingest.queue.producer import Producer
from rag.embedding.protocol import Embedder
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore

log = logging.getLogger(__name__)


def view_of(job: JobStatus) -> JobView:
    """The board's record in the one job shape."""
    return JobView.model_validate(
        {
            **job.as_dict(),
            "progress": JobProgress(files_total=job.files_total, files_done=job.finished),
        }
    )


class QueueJobs:
    on_queue = True

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        store: QdrantStore | None = None,
        consume: bool = True,
    ) -> None:
        """``embedder`` and ``store``: this process's; it consumes with them when
        ``consume`` (the embedded store); the store also finishes deletions at start."""
        self.settings = settings
        self.producer = Producer(settings)
        self.store = store
        self._consume_with = (embedder, store) if embedder and store and consume else None
        self.consumer: Consumer | None = None
        self.on_finish: FinishHook | None = None  # unused: workers count in Redis (``outcomes``)
        self.names = PathNames(settings.api_ingest_roots)
        self._outcomes: dict[str, int] | None = None

    def start(self) -> list[str]:
        if self._consume_with is not None:
            embedder, store = self._consume_with
            worker = queue_ingest_worker(self.settings, embedder, store)
            self.consumer = start_consumer(self.settings, worker, self.settings.queue_concurrency)
            log.warning("this API consumes the ingestion queue (embedded store)")
        if self.store is not None:  # before the inbox is read again
            Tombstones(self.settings.inbox).resume(self.store.documents.delete_document)
        if not inbox_has_files(self.settings.inbox):
            return []
        try:
            return [self.submit([self.settings.inbox], prune=False, origin="inbox").job_id]
        except (OSError, QueueUnavailable) as exc:
            log.warning("inbox not enqueued at start: %s", exc)
            return []

    def submit(
        self,
        paths: Sequence[str | Path],
        prune: bool,
        origin: str = "request",
        owner: str = "",
        access: JobAccess | None = None,
    ) -> JobView:
        job = self.producer.submit(
            [Path(p) for p in paths], prune=prune, origin=origin, owner=owner, access=access
        )
        return self.names.view(view_of(job))

    def get(self, job_id: str) -> JobView | None:
        self.producer.board.ping()
        job = self.producer.get(job_id)
        return self.names.view(view_of(job)) if job else None

    def recent(self, limit: int = 20) -> list[JobView]:
        self.producer.board.ping()
        return [self.names.view(view_of(job)) for job in self.producer.board.recent(limit)]

    def queue_depth(self) -> float:
        try:
            return float(self.producer.queue_depth())
        except Exception:  # Redis down: the gauge says "unknown", /metrics still answers
            return float("nan")

    def outcomes(self) -> dict[str, int]:
        """The fleet's totals; while Redis cannot be read, the last ones read (a counter
        must not drop), or the error when none was read yet."""
        try:
            self._outcomes = self.producer.board.outcomes()
        except Exception:
            if self._outcomes is None:
                raise
            log.debug("queue outcomes unreadable: the last totals stand")
        return dict(self._outcomes)

    def shutdown(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        self.producer.close()
