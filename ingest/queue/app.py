"""The Celery application of the ingestion queue (Redis broker), shared by producers (the
CLI, the API) and consumers (``python -m ingest --worker``).

Delivery is at least once: a task is acknowledged only after it ran (``acks_late``), so a
worker killed mid-task leaves it unacknowledged and Redis hands it out again once
``RAG_QUEUE_VISIBILITY_TIMEOUT_S`` (60 s) has passed since its worker's last heartbeat
(``ingest.queue.heartbeat``: a live worker keeps its tasks fresh, so a long task is not
redelivered; the sweep runs every ``RAG_QUEUE_RESTORE_INTERVAL_S``). Re-running a task is
harmless: unchanged files are skipped by hash and point ids are deterministic; a task
started ``RAG_QUEUE_MAX_DELIVERIES`` times without finishing is given up
(``ingest.queue.tasks``). One task is reserved per worker thread at a time (prefetch 1), so
a dead worker strands at most its running tasks.
"""

from __future__ import annotations

from celery import Celery

from rag.settings import QueueSettings

INGEST_TASK = "rag.ingest_files"
PRUNE_TASK = "rag.prune_roots"


def redis_prefix(collection: str) -> str:
    """Keys of the job board; per collection (``RAG_COLLECTION``, the store group), so two
    stores can share one Redis."""
    return f"rag:{collection}"


def make_celery(settings: QueueSettings) -> Celery:
    if not settings.broker_url:
        raise ValueError("RAG_BROKER_URL is not set")
    app = Celery("rag-ingest", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": settings.queue_visibility_timeout_s,
            "unacked_restore_interval": settings.queue_restore_interval_s,
            "unacked_restore_throttle": 1,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            **(
                {"master_name": settings.queue_sentinel_master}
                if settings.queue_sentinel_master
                else {}
            ),
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for Redis to come back
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
