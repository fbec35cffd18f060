"""Keep the tasks a live worker holds invisible to the redelivery sweep; let a dead
worker's come back within the visibility timeout.

kombu's Redis transport emulates acknowledgements: a delivered message stays in the
``unacked`` hash, indexed in the sorted set ``unacked_index`` by its delivery time, and every
worker's sweep (``RAG_QUEUE_RESTORE_INTERVAL_S``) puts back on the queue each message
indexed more than ``RAG_QUEUE_VISIBILITY_TIMEOUT_S`` ago. Nothing in kombu refreshes that
time while a task runs, so the timeout had to exceed the longest task (an hour), and a
killed worker's files waited that long.

Here a worker holds the delivery tag of every message it received (running or waiting for
its retry's countdown: Celery's ``task_received``), and a thread re-scores them to "now"
every quarter of the timeout (``ZADD XX``: a tag no longer indexed, acknowledged or put
back, is never re-added, and is dropped). A live task is therefore never older than a
quarter of the timeout, however long it runs, and a dead worker's tasks are put back at
most the timeout plus one sweep after its last beat. A Redis outage longer than the
timeout may let a sweep put back a live task before the next beat: it runs twice, which is
harmless (ingestion is idempotent) and counted as a delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery.signals import task_received

log = logging.getLogger(__name__)

#: kombu's default name of the index (the transport option ``unacked_index_key``).
UNACKED_INDEX = "unacked_index"


class Heartbeat:
    """One per worker process: the tags it holds, refreshed on a daemon thread."""

    def __init__(self, client: redis.Redis, interval_s: float, key: str = UNACKED_INDEX) -> None:
        self.client, self.interval_s, self.key = client, interval_s, key
        self._tags: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, tag: str) -> None:
        with self._lock:
            self._tags.add(tag)

    def release(self, tag: str) -> None:
        with self._lock:
            self._tags.discard(tag)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._tags)

    def beat(self) -> None:
        """Re-score every held tag to now; forget those no longer indexed."""
        tags = self.held()
        if not tags:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.zadd(self.key, {tag: now}, xx=True, ch=True)
        gone = [tag for tag, changed in zip(tags, pipe.execute()) if not changed]
        with self._lock:
            self._tags.difference_update(gone)

    def start(self) -> Heartbeat:
        task_received.connect(self._on_received, weak=False)
        self._thread = threading.Thread(target=self._run, name="queue-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        task_received.disconnect(self._on_received)
        self._stop.set()

    def _on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        tag = delivery_tag(getattr(request, "message", None))
        if tag:
            self.hold(tag)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except redis.RedisError as exc:  # the broker is away: the worker waits for it too
                log.warning("queue heartbeat failed (tasks may be redelivered): %s", exc)


def delivery_tag(message: Any) -> str | None:
    """The kombu message's delivery tag (set when it was published, kept when put back)."""
    tag = getattr(message, "delivery_tag", None)
    return str(tag) if tag else None
