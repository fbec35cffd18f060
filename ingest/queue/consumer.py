"""``python -m ingest --worker``: a consumer of the ingestion queue.

One process owns an embedder (in-process or ``RAG_EMBEDDING_URL``) and a store, and runs
``RAG_QUEUE_CONCURRENCY`` tasks at once on a threads pool: while one task's files are being
parsed, another's passages are embedded (the parser process and the embedder each take one
caller at a time). With a Qdrant server, run as many of these processes as the embedding
server keeps busy (``docker compose up --scale worker=N``); with the embedded store, exactly
one process may own the folder, so one worker process (or the API, see ``start_consumer``)
is the consumer.

SIGTERM / Ctrl-C: a warm shutdown, running tasks finish; a second one (or kill -9) leaves
them unacknowledged, and Redis redelivers them after the visibility timeout. While the
process lives, its heartbeat (``ingest.queue.heartbeat``) keeps the tasks it holds from
being redelivered, however long they run. A consumer that Celery left deaf after a broker
reconnect (``ingest.queue.watchdog``) is restarted: the worker process re-executes itself
(same pid, same arguments) once its running tasks have finished, the API replaces its
consumer.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery

from ingest.indexer import Indexer
from ingest.queue.app import make_celery, redis_prefix
from ingest.queue.heartbeat import Heartbeat
from ingest.queue.job_board import JobBoard
from ingest.queue.tasks import TaskContext, active_tasks, install, register
from ingest.queue.watchdog import Watchdog
from rag import tracing
from rag.embedding.protocol import Embedder
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore

log = logging.getLogger(__name__)


def bind_tasks(settings: Settings, worker: Indexer) -> tuple[Heartbeat, JobBoard]:
    """Bind the tasks to this process's worker; the heartbeat of the tasks it will hold
    (started) and the job board."""
    board = JobBoard.connect(
        settings.broker_url or "",
        redis_prefix(settings.collection),
        timeout_s=30.0,
        sentinel_master=settings.queue_sentinel_master,
    )
    heartbeat = Heartbeat(board.redis, settings.queue_visibility_timeout_s / 4).start()
    install(TaskContext(settings.queue, worker, board, heartbeat))
    tracing.setup("rag-ingest-worker", trace_text=settings.trace_text)  # only with OTEL_* set
    return heartbeat, board


def _celery(settings: Settings) -> Celery:
    """A fresh app with the tasks (a restarted consumer shares no state with the deaf
    one)."""
    app = make_celery(settings.queue)
    register(app)
    return app


def _watchdog(
    settings: Settings, board: JobBoard, concurrency: int, on_stall: Callable[[], None]
) -> Watchdog:
    return Watchdog(
        board.redis,
        settings.queue_name,
        concurrency,
        active_tasks,
        settings.queue_stall_s,
        on_stall,
    )


def queue_ingest_worker(settings: Settings, embedder: Embedder, store: QdrantStore) -> Indexer:
    """Reads only under the shared roots; store and embedding-server faults are retried by
    the queue rather than failing the files."""
    return Indexer(
        settings, embedder, store, allowed_roots=settings.api_ingest_roots, raise_transient=True
    )


def _options(concurrency: int) -> dict[str, object]:
    """What both ways of consuming share: threads, one name per process, and none of
    Celery's cluster chatter (gossip, mingle, worker heartbeats: ``Heartbeat`` keeps the
    tasks fresh instead)."""
    return {
        "concurrency": concurrency,
        "hostname": f"ingest-{os.getpid()}@{socket.gethostname()}",
        "without_gossip": True,
        "without_mingle": True,
        "without_heartbeat": True,
        "optimization": "fair",
    }


def run_worker(settings: Settings, worker: Indexer, concurrency: int) -> int:
    """Consume until SIGTERM/SIGINT (Celery's own signal handling); the exit code."""
    _, board = bind_tasks(settings, worker)
    celery_worker = _celery(settings).Worker(
        pool="threads", loglevel="INFO", quiet=True, **_options(concurrency)
    )
    log.warning(
        "ingest worker consuming %s (%d at once), shared roots: %s",
        settings.queue_name,
        concurrency,
        ", ".join(str(r) for r in settings.api_ingest_roots),
    )
    watchdog = _watchdog(settings, board, concurrency, lambda: _reexec(concurrency)).start()
    try:
        celery_worker.start()
    finally:
        watchdog.stop()
    return int(celery_worker.exitcode or 0)


def _reexec(concurrency: int) -> None:
    """Replace this process by a fresh worker, as ``python -m ingest`` runs it: same pid
    (a supervisor sees no exit), the same settings (the environment is kept), no Celery
    state kept. Tasks still running finish first (the deaf consumer takes no new ones, and
    the heartbeat keeps theirs); messages this process had received and not started (a
    retry's countdown) are redelivered after the visibility timeout."""
    while active_tasks():
        time.sleep(0.5)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "ingest", "--worker", "--concurrency", str(concurrency)]
    os.execv(sys.executable, argv)


@dataclass
class Consumer:
    """A consumer inside another process (the API, which owns the embedded store); its
    watchdog replaces a deaf controller by a fresh one (``restart``)."""

    settings: Settings
    concurrency: int
    controller: object
    thread: threading.Thread
    heartbeat: Heartbeat
    watchdog: Watchdog | None = None

    def restart(self) -> None:
        """A new app and controller; the old one is told to stop on a thread of its own
        (it may never answer: it is deaf, not dead) and is not waited for. kombu keeps
        one event loop per process, which a new controller would share and the old one's
        stop would close under it: the new one gets its own."""
        from kombu.asynchronous import set_event_loop

        old = self.controller
        set_event_loop(None)
        threading.Thread(
            target=old.stop,  # type: ignore[attr-defined]
            kwargs={"in_sighandler": False},
            name="ingest-consumer-stop",
            daemon=True,
        ).start()
        self.controller, self.thread = _controller(self.settings, self.concurrency)

    def stop(self, grace_s: float = 50.0) -> None:
        """A warm stop: running tasks finish (up to ``grace_s``). Celery's stop also waits
        for a broker it is reconnecting to; that wait is not ours to sit through, so with
        no task running the process goes after 2 s (unfinished tasks are redelivered)."""
        if self.watchdog is not None:
            self.watchdog.stop()
        stopper = threading.Thread(
            target=self.controller.stop,  # type: ignore[attr-defined]
            kwargs={"in_sighandler": False},
            daemon=True,
        )
        stopper.start()
        deadline = time.monotonic() + grace_s
        idle_since = None
        while stopper.is_alive() and time.monotonic() < deadline:
            stopper.join(timeout=0.25)
            if active_tasks() == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2.0:
                    break
            else:
                idle_since = None
        self.heartbeat.stop()


def start_consumer(settings: Settings, worker: Indexer, concurrency: int) -> Consumer:
    """Celery's WorkController (no signal handlers: not the main thread) on a thread."""
    heartbeat, board = bind_tasks(settings, worker)
    controller, thread = _controller(settings, concurrency)
    consumer = Consumer(settings, concurrency, controller, thread, heartbeat)
    consumer.watchdog = _watchdog(settings, board, concurrency, consumer.restart).start()
    return consumer


def _controller(settings: Settings, concurrency: int) -> tuple[object, threading.Thread]:
    controller = _celery(settings).WorkController(pool_cls="threads", **_options(concurrency))
    thread = threading.Thread(target=controller.start, name="ingest-consumer", daemon=True)
    thread.start()
    return controller, thread
