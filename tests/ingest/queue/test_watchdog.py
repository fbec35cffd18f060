"""The watchdog of a deaf consumer, for real: Redis, Celery workers, and the fault itself
(a consumer connected and alive that no longer pops the queue, as Celery can leave one
after a broker reconnect), made with Celery's own ``cancel_task_queue``."""

from __future__ import annotations

import threading
import time

import redis

from bench.services import wait_for
from ingest.queue.producer import Producer
from ingest.queue.watchdog import Watchdog
from tests.helpers.queue import (
    WorkerProcess,
    as_settings,
    board_for,
    queue_env,
    queue_settings,
    wait_done,
    write_corpus,
)

STALL_S = 0.6


def _watchdog(
    server, busy=lambda: 0, capacity: int = 1, stall_s: float = STALL_S
) -> tuple[Watchdog, list[float]]:
    stalls: list[float] = []
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    dog = Watchdog(client, "q", capacity, busy, stall_s, lambda: stalls.append(time.monotonic()))
    return dog, stalls


def test_tasks_waiting_beside_an_idle_consumer_restart_it_once_per_stall(redis_server):
    dog, stalls = _watchdog(redis_server)
    dog.client.rpush("q", "task")
    started = time.monotonic()
    dog.start()
    try:
        wait_for(lambda: len(stalls) >= 2, 10, "two stalls")
    finally:
        dog.stop()
    assert stalls[0] - started >= STALL_S  # not before the stall had lasted
    assert stalls[1] - stalls[0] >= STALL_S  # and again only after a whole new stall
    assert dog.restarts == len(stalls)


def test_an_empty_queue_a_full_pool_or_a_received_task_never_restart(redis_server):
    from celery.signals import task_received

    empty, empty_stalls = _watchdog(redis_server)
    full, full_stalls = _watchdog(redis_server, busy=lambda: 2, capacity=2)
    # a stall far longer than the feeder's beat: only a loaded machine's pause could fake one
    receiving, receiving_stalls = _watchdog(redis_server, busy=lambda: 1, capacity=2, stall_s=2)
    full.client.rpush("q-full", "task")
    full.queue = receiving.queue = "q-full"
    stop = threading.Event()

    def receive() -> None:  # a consumer taking tasks as they come (others keep arriving)
        while not stop.wait(0.1):
            task_received.send(sender=None, request=None)

    feeder = threading.Thread(target=receive)
    for dog in (empty, full, receiving):
        dog.start()
    feeder.start()
    time.sleep(STALL_S * 5)
    stop.set()
    feeder.join()
    for dog in (empty, full, receiving):
        dog.stop()
    assert empty_stalls == [] and full_stalls == [] and receiving_stalls == []
    # the same watchdog does restart once nothing is received any more
    receiving, receiving_stalls = _watchdog(redis_server, busy=lambda: 1, capacity=2)
    receiving.queue = "q-full"
    receiving.start()
    try:
        wait_for(lambda: receiving_stalls, 10, "a stall")
    finally:
        receiving.stop()


def test_redis_unreachable_is_the_reconnects_business_not_a_stall(redis_server):
    dog, stalls = _watchdog(redis_server)
    dog.client.rpush("q", "task")
    redis_server.stop()
    dog.start()
    try:
        time.sleep(STALL_S * 4)
        assert stalls == []
        redis_server.start()  # the task is still queued (AOF): the watchdog still watches
        wait_for(lambda: stalls, 10, "a stall once Redis is back")
    finally:
        dog.stop()


def test_a_deaf_worker_re_executes_itself_and_its_queued_job_finishes(redis_server, tmp_path):
    """The worker's first consumer never pops the queue: without the watchdog the job
    waits forever; with it the process replaces itself (same pid) and the job is done."""
    shared = tmp_path / "shared"
    write_corpus(shared / "a", 2, seed=5)
    env = queue_settings(tmp_path, redis_server, shared, RAG_QUEUE_STALL_S="4")
    log = tmp_path / "worker.log"
    worker = WorkerProcess(queue_env(env), log, module="tests.helpers.deaf_worker")
    worker.start()
    producer = Producer(as_settings(env))
    try:
        assert worker.process is not None
        pid = worker.process.pid
        job = producer.submit([shared / "a"])
        done = wait_done(board_for(env), job.job_id, timeout=120)
        assert done.counts["done"] == 2
        assert worker.process.poll() is None and worker.process.pid == pid
        text = log.read_text()
        assert "ingestion consumer deaf: 1 task(s) waited in rag-ingest" in text, text[-3000:]
        assert text.count(" ready.") == 2  # the deaf start and the re-executed one
    finally:
        producer.close()
        worker.stop()


def test_a_task_running_when_the_worker_goes_deaf_finishes_before_the_re_exec(
    redis_server, tmp_path
):
    """Deaf while a long task runs (room for one more): the re-exec waits for it, so it is
    delivered once and counted done, and the job queued behind it finishes too."""
    shared = tmp_path / "shared"
    long = write_corpus(shared / "long", 1, words=60_000, seed=7)[0]
    write_corpus(shared / "b", 2, seed=8)
    env = queue_settings(tmp_path, redis_server, shared, RAG_QUEUE_STALL_S="2")
    log = tmp_path / "worker.log"
    worker = WorkerProcess(
        {**queue_env(env), "DEAF_WHEN": "task"}, log, 2, module="tests.helpers.deaf_worker"
    )
    worker.start()
    producer = Producer(as_settings(env))
    board = board_for(env)
    try:
        first = producer.submit([long])
        wait_for(lambda: board.states(first.job_id, [str(long)])[str(long)] == "running", 60, "")
        second = producer.submit([shared / "b"])
        assert wait_done(board, second.job_id, timeout=180).counts["done"] == 2
        done = wait_done(board, first.job_id, timeout=60)
        assert done.counts["done"] == 1
        assert list(board.deliveries(first.job_id).values()) == [1]  # never killed, redone
        text = log.read_text()
        assert "ingestion consumer deaf" in text and text.count(" ready.") == 2, text[-3000:]
        # the re-exec came after the long task had finished
        assert text.index("ingestion consumer deaf") < text.rindex(" ready.")
    finally:
        producer.close()
        worker.stop()


def test_the_apis_deaf_consumer_is_replaced(redis_server, tmp_path, embedder, settings_factory):
    """The consumer inside the API (embedded store): the watchdog starts a new controller."""
    from ingest.queue.consumer import queue_ingest_worker, start_consumer
    from rag.store.qdrant_store import QdrantStore

    shared = tmp_path / "shared"
    write_corpus(shared / "a", 2, seed=6)
    env = queue_settings(tmp_path, redis_server, shared, RAG_QUEUE_STALL_S="3")
    settings = as_settings(env)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    consumer = start_consumer(settings, queue_ingest_worker(settings, embedder, store), 1)
    producer = Producer(settings)
    try:
        deaf = consumer.controller
        wait_for(
            lambda: getattr(getattr(deaf, "consumer", None), "task_consumer", None), 60, "ready"
        )
        time.sleep(1.5)  # its first pop has returned
        deaf.consumer.cancel_task_queue(settings.queue_name)  # type: ignore[attr-defined]
        time.sleep(1.5)  # a pop in flight when it was cancelled has returned (1 s timeout)
        job = producer.submit([shared / "a"])
        done = wait_done(board_for(env), job.job_id, timeout=90)
        assert done.counts["done"] == 2
        assert consumer.controller is not deaf
        assert consumer.watchdog is not None and consumer.watchdog.restarts == 1
    finally:
        producer.close()
        consumer.stop(grace_s=10)
        store.close()
