"""A consumer that stopped listening to the queue is restarted.

Celery's Redis consumer can come back from a broker outage connected but deaf: it no longer
asks Redis for tasks (the "catatonic worker" of celery/celery#8030, #8091, #9054, #10205;
seen here once in CI after a Redis restart under an idle worker), so queued work waits
forever while the worker looks healthy. Celery cannot be asked whether it listens, so the
watchdog looks at what the queue shows: tasks waiting in the queue's list while this
process has a free slot and received nothing. A consumer that listens takes a waiting task
within moments (a blocking pop), so that state held for ``RAG_QUEUE_STALL_S`` means deaf,
and ``on_stall`` restarts the consumer (``ingest.queue.consumer``: a worker process
re-executes itself, the API replaces its consumer). Waiting tasks are never lost: they stay
in Redis for the new consumer.

Invariants: a task received, a full pool, an empty queue or Redis unreachable (the consumer
is reconnecting: Celery's business) each restart the clock, so a consumer that works is
never restarted; at most one restart per ``stall_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery.signals import task_received

log = logging.getLogger(__name__)


@dataclass
class Watchdog:
    """One per consumer; ``start`` runs it on a daemon thread until ``stop``."""

    client: redis.Redis
    queue: str  # the list Celery's Redis transport pops tasks from
    capacity: int  # tasks the consumer runs at once
    busy: Callable[[], int]  # tasks it runs now
    stall_s: float
    on_stall: Callable[[], None]
    restarts: int = 0
    _received: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        task_received.connect(self._on_received, weak=False)
        self._thread = threading.Thread(target=self._run, name="queue-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        task_received.disconnect(self._on_received)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _on_received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        self._received += 1

    def waiting(self) -> int:
        """Tasks in the queue's list (not those reserved by consumers)."""
        return int(self.client.llen(self.queue))

    def _deaf(self) -> int:
        """The tasks waiting when this sample looks deaf (they wait and this consumer has
        room for one), else 0."""
        try:
            waiting = self.waiting()
        except redis.RedisError:
            return 0
        return waiting if waiting > 0 and self.busy() < self.capacity else 0

    def _run(self) -> None:
        interval = max(0.2, self.stall_s / 10)
        since: float | None = None
        seen = self._received
        while not self._stop.wait(interval):
            received, seen = self._received != seen, self._received
            waiting = 0 if received else self._deaf()
            if not waiting:
                since = None
                continue
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since < self.stall_s:
                continue
            log.error(
                "ingestion consumer deaf: %d task(s) waited in %s for %.0f s while it had "
                "room and received nothing (a broker reconnect gone wrong?); restarting it",
                waiting,
                self.queue,
                time.monotonic() - since,
            )
            self.restarts += 1
            since, seen = None, self._received
            try:
                self.on_stall()
            except Exception:  # the next stall tries again
                log.exception("restarting the ingestion consumer failed")
