"""Redelivery for real (Redis, `python -m ingest --worker`, kill -9): a live task longer than
the visibility timeout is not delivered again (the heartbeat), a killed worker's task comes
back within about the timeout, a task whose worker dies every time is dead-lettered after
RAG_QUEUE_MAX_DELIVERIES starts, and a file stored by a delivery that could not report it
(Redis away, the worker killed) counts done, not unchanged."""

from __future__ import annotations

import time

from bench.services import wait_for
from ingest.queue.app import INGEST_TASK
from ingest.queue.job_board import JobBoard
from tests.helpers.queue import (
    lease_settings,
    polled,
    started_worker,
    wait_done,
    write_corpus,
)

TIMEOUT_S = 4  # the smallest visibility timeout allowed: a heartbeat every second
#: Longer than a worker's start here (~10 s), so the time a killed task takes to come back is
#: the timeout's, not the restart's.
KILL_TIMEOUT_S = 15


def _started(board: JobBoard, job_id: str, path: str, deliveries: int) -> None:
    wait_for(
        polled(
            lambda: (
                sum(board.deliveries(job_id).values()) >= deliveries
                and board.states(job_id, [path])[path] == "running"
            )
        ),
        120,
        f"delivery {deliveries} of job {job_id} to start",
    )


def test_a_live_long_task_is_not_redelivered_and_late_reports_count_done(redis_server, tmp_path):
    shared = tmp_path / "shared"
    # ~10 s per 40,000 words here: long enough on a machine several times faster
    long = write_corpus(shared / "long", 1, words=120_000, seed=31)[0]
    outage = write_corpus(shared / "outage", 1, words=40_000, seed=32)[0]
    small = write_corpus(shared / "small", 2, seed=33)
    env = lease_settings(tmp_path, redis_server, shared, TIMEOUT_S)
    # two threads: a redelivered task would be taken by the idle one
    worker, producer = started_worker(env, tmp_path / "worker.log", concurrency=2)
    board = producer.board
    try:
        job = producer.submit([long])
        _started(board, job.job_id, str(long), 1)
        running_since = time.monotonic()
        done = wait_done(board, job.job_id)
        took = time.monotonic() - running_since
        assert took > 2 * TIMEOUT_S, f"the task ran {took:.1f} s: too short to prove anything"
        assert list(board.deliveries(job.job_id).values()) == [1]  # never delivered again
        assert done.counts["done"] == 1

        # Redis goes away while a task runs: its report waits for Redis, and says done.
        second = producer.submit([outage])
        _started(board, second.job_id, str(outage), 1)
        redis_server.stop()
        time.sleep(3)
        redis_server.start()
        after_outage = wait_done(board, second.job_id)
        assert (after_outage.counts["done"], after_outage.counts["unchanged"]) == (1, 0)

        # A delivery that stored a file and died before reporting it, delivered again: the
        # file is unchanged in the store, and yet this job did it.
        path = str(small[0])
        board.create("a" * 32, origin="test", paths=[path], prune=False, files=[path], tasks=["t"])
        board.move("a" * 32, [path], "running")  # the first delivery had started it
        board.mark_enqueued("a" * 32)
        wait_done(board, producer.submit([small[0]]).job_id)  # ...and stored it
        board.create("b" * 32, origin="test", paths=[path], prune=False, files=[path], tasks=["u"])
        board.move("b" * 32, [path], "running")  # stored before this job existed
        board.mark_enqueued("b" * 32)
        for job_id, task_id in (("a" * 32, "t"), ("b" * 32, "u")):
            producer.app.send_task(
                INGEST_TASK,
                args=[job_id, [path]],
                task_id=task_id,
                queue=env.get("RAG_QUEUE_NAME", "rag-ingest"),
            )
        redelivered = wait_done(board, "a" * 32, timeout=120)
        older = wait_done(board, "b" * 32, timeout=120)
    finally:
        producer.close()
        worker.stop()
    print(f"a {took:.1f} s task under a {TIMEOUT_S} s visibility timeout: delivered once")
    assert redelivered.counts["done"] == 1 and redelivered.counts["unchanged"] == 0
    assert older.counts["unchanged"] == 1 and older.counts["done"] == 0


def test_a_killed_workers_task_comes_back_and_one_that_kills_every_worker_is_dead_lettered(
    redis_server, tmp_path
):
    shared = tmp_path / "shared"
    poison = write_corpus(shared / "poison", 1, words=40_000, seed=41)[0]
    env = lease_settings(
        tmp_path, redis_server, shared, KILL_TIMEOUT_S, RAG_QUEUE_MAX_DELIVERIES="2"
    )
    worker, producer = started_worker(env, tmp_path / "worker.log")
    board = producer.board
    try:
        job = producer.submit([poison])
        _started(board, job.job_id, str(poison), 1)
        time.sleep(1.0)  # inside its parse/embedding
        worker.kill9()
        killed = time.monotonic()
        worker.start()
        restarted = time.monotonic() - killed
        _started(board, job.job_id, str(poison), 2)
        back = time.monotonic() - killed
        time.sleep(1.0)
        worker.kill9()  # the second start dies too: the third delivery gives it up
        worker.start()
        done = wait_done(board, job.job_id, timeout=120)
        letters = board.dead_letters()
        deliveries = board.deliveries(job.job_id)
    finally:
        producer.close()
        worker.stop()
    print(
        f"kill -9: worker up again {restarted:.1f} s later, its task running again "
        f"{back:.1f} s after the kill (timeout {KILL_TIMEOUT_S} s, sweep every 1 s)"
    )
    assert back <= max(restarted, KILL_TIMEOUT_S + 1) + 3
    if restarted < KILL_TIMEOUT_S - 2:  # not before the timeout: the heartbeat had kept it
        assert back >= KILL_TIMEOUT_S - KILL_TIMEOUT_S / 4 - 1
    assert list(deliveries.values()) == [3]
    assert done.counts["failed"] == 1 and done.counts["running"] == 0
    reason = done.failures[0]["error"]
    assert "started 2 times without finishing" in reason, reason
    assert any(letter["path"] == str(poison) and letter["reason"] == reason for letter in letters)
