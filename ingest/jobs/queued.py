"""Ingestion jobs on the queue (RAG_BROKER_URL), behind the same face as ``JobManager``.

The API enqueues (``POST /v1/ingest``, uploads) and reads job counts from the job board in
Redis; workers run the tasks. With the embedded store the API process owns the store, so it
is also the queue's consumer (Celery's worker on a thread, ``RAG_QUEUE_CONCURRENCY`` tasks at
once); with a Qdrant server it only produces, and ``python -m ingest --worker`` processes
consume. Redis being down is a ``QueueUnavailable`` (HTTP 503), never a lost request: an
upload is already saved in the inbox and is enqueued again at the next start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from api.uploads import inbox_has_files
from ingest.queue.consumer import Consumer, queue_ingest_worker, start_consumer
from ingest.queue.job_board import QueueUnavailable
from ingest.queue.producer import Producer
from rag.embedding.protocol import Embedder
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore

log = logging.getLogger(__name__)


class QueueJobs:
    def __init__(
        self, settings: Settings, embedder: Embedder | None = None, store: QdrantStore | None = None
    ) -> None:
        """``embedder`` and ``store``: given when this process consumes (embedded store)."""
        self.settings = settings
        self.producer = Producer(settings)
        self._consume_with = (embedder, store) if embedder and store else None
        self.consumer: Consumer | None = None
        self.on_finish = None  # workers count outcomes in Redis (``outcomes``)

    def start(self) -> list[str]:
        if self._consume_with is not None:
            embedder, store = self._consume_with
            worker = queue_ingest_worker(self.settings, embedder, store)
            self.consumer = start_consumer(self.settings, worker, self.settings.queue_concurrency)
            log.warning("this API consumes the ingestion queue (embedded store)")
        if not inbox_has_files(self.settings.inbox):
            return []
        try:
            return [
                self.submit([str(self.settings.inbox.absolute())], prune=False, origin="inbox")[
                    "job_id"
                ]
            ]
        except (OSError, QueueUnavailable) as exc:
            log.warning("inbox not enqueued at start: %s", exc)
            return []

    def submit(self, paths: list[str], prune: bool, origin: str = "request") -> dict[str, Any]:
        job = self.producer.submit([Path(p) for p in paths], prune=prune, origin=origin)
        return job.as_dict()

    def get(self, job_id: str) -> dict[str, Any] | None:
        self.producer.board.ping()
        job = self.producer.get(job_id)
        return job.as_dict() if job else None

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        self.producer.board.ping()
        return [job.as_dict() for job in self.producer.board.recent(limit)]

    def queue_depth(self) -> float:
        try:
            return float(self.producer.queue_depth())
        except Exception:  # Redis down: the gauge says "unknown", /metrics still answers
            return float("nan")

    def outcomes(self) -> dict[str, int]:
        return self.producer.board.outcomes()

    def shutdown(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
        self.producer.close()
