"""Ingestion jobs behind one service (see ``ingest.jobs.service``): what the API imports of
ingestion. ``open_jobs`` builds the service the settings call for; the implementations are
imported only then (the queue's pulls Celery in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.files.confine import NoSuchPath, OutsideRoots
from ingest.jobs.service import (
    FileCounts,
    FileProblem,
    JobProgress,
    JobService,
    JobState,
    JobView,
)
from ingest.queue.job_board import QueueUnavailable

if TYPE_CHECKING:
    from rag.embedding.protocol import Embedder
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore

__all__ = [
    "FileCounts",
    "FileProblem",
    "JobProgress",
    "JobService",
    "JobState",
    "JobView",
    "NoSuchPath",
    "OutsideRoots",
    "QueueUnavailable",
    "open_jobs",
]


def open_jobs(settings: Settings, embedder: Embedder, store: QdrantStore) -> JobService:
    """With RAG_BROKER_URL, the queue's producer, and also its consumer when this process
    owns the embedded store (no RAG_QDRANT_URL); otherwise jobs run here, one at a time,
    reading only under the shared roots (the inbox and RAG_INGEST_ROOTS), recorded under
    ``<data_dir>/jobs``."""
    if settings.broker_url:
        from ingest.jobs.queued import QueueJobs

        return QueueJobs(settings, embedder, store, consume=not settings.qdrant_url)
    from ingest.indexer import Indexer
    from ingest.jobs.inprocess import JobManager

    worker = Indexer(settings, embedder, store, allowed_roots=settings.api_ingest_roots)
    return JobManager(
        worker, settings.data_dir / "jobs", inbox=settings.inbox, roots=settings.api_ingest_roots
    )
