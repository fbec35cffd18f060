"""The ingestion queue for real: Redis (Debian's redis-server), Celery workers as separate
processes (`python -m ingest --worker`) owning an embedded store, the CLI as producer.

Several worker processes on one store need a Qdrant server (compose); here one worker
process runs tasks on two threads, which exercises the same delivery, retry and
idempotence paths (the store code is the same for a server)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.services import wait_for
from ingest.indexer import Indexer
from ingest.queue.job_board import JobBoard
from ingest.queue.producer import OutsideSharedRoots, Producer, batches
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.conftest import FIXTURES, ROOT
from tests.helpers.queue import (
    WorkerProcess,
    as_settings,
    board_for,
    lease_settings,
    polled,
    queue_env,
    queue_settings,
    started_worker,
    wait_done,
    write_corpus,
)


def stored(env: dict, embedder) -> tuple[list[str], int, int]:
    """Sources, parent count, passage count of the store (after the worker stopped)."""
    store = QdrantStore(as_settings(env), embedder.name, embedder.dimension)
    try:
        docs = store.documents.list_documents()
        return (
            sorted(d.source for d in docs),
            sum(d.parents for d in docs),
            store.documents.count_passages(),
        )
    finally:
        store.close()


def clean_run(tmp_path: Path, folder: Path, embedder) -> tuple[int, int]:
    """Parents and passages of the same files ingested without the queue."""
    settings = Settings(data_dir=tmp_path / "clean")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        summary = Indexer(settings, embedder, store).run([folder])
        assert not summary.failed
        return summary.parents, summary.passages
    finally:
        store.close()


# --- units ------------------------------------------------------------------------------
def test_small_files_travel_together_and_a_large_one_alone():
    files = [("a", 10), ("b", 10), ("c", 5_000), ("d", 10), ("e", 10), ("f", 10)]
    planned = batches(files, max_files=2, max_bytes=1_000)
    assert [b.paths for b in planned] == [["c"], ["a", "b"], ["d", "e"], ["f"]]


def test_job_counts_move_once_per_file(redis_server):
    board = JobBoard.connect(redis_server.url, "t")
    board.create("j", origin="test", paths=["/x"], prune=False, files=["a", "b"], tasks=["t"])
    board.mark_enqueued("j")
    assert board.move("j", ["a", "b"], "running") == ["a", "b"]
    assert board.move("j", ["a"], "done") == ["a"]
    assert board.move("j", ["a"], "unchanged") == []  # a redelivery does not recount
    assert board.move("j", ["a"], "failed", "late") == []  # nor un-finishes a file
    assert board.move("j", ["b"], "failed", "broken") == ["b"]
    job = board.get("j")
    assert job.status == "done" and job.counts["done"] == 1 and job.counts["failed"] == 1
    assert job.failures == [{"path": "b", "error": "broken"}]
    assert board.move("j", ["b"], "done") == ["b"]  # a failed file may still succeed
    job = board.get("j")
    assert (job.counts["done"], job.counts["failed"], job.failures) == (2, 0, [])
    assert sum(job.counts.values()) == job.files_total
    board.create("empty", origin="test", paths=["/y"], prune=False, files=[], tasks=[])
    board.mark_enqueued("empty")
    empty = board.get("empty")
    assert empty.status == "done" and empty.finished_at is not None


def test_a_path_outside_the_shared_roots_is_refused(redis_server, tmp_path):
    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    write_corpus(elsewhere, 1)
    shared.mkdir()
    env = queue_settings(tmp_path, redis_server, shared)
    producer = Producer(as_settings(env))
    try:
        with pytest.raises(OutsideSharedRoots, match="not under a shared root"):
            producer.submit([elsewhere])
        with pytest.raises(FileNotFoundError):
            producer.submit([shared / "missing.txt"])
        assert producer.board.recent() == []  # nothing enqueued
    finally:
        producer.close()


# --- with a worker process -----------------------------------------------------------------
def test_two_consumers_share_a_job_each_file_once_and_a_poison_file_is_dead_lettered(
    redis_server, tmp_path, embedder
):
    shared = tmp_path / "shared"
    write_corpus(shared / "notes", 9)
    poison = shared / "notes" / "broken.pdf"
    poison.write_bytes((FIXTURES / "corrupt.pdf").read_bytes())
    env = queue_settings(tmp_path, redis_server, shared)
    worker = WorkerProcess(queue_env(env), tmp_path / "worker.log", concurrency=2)
    worker.start()
    producer = Producer(as_settings(env))
    try:
        job = producer.submit([shared / "notes"])
        assert job.files_total == 10 and job.tasks_total == 5
        done = wait_done(producer.board, job.job_id)
        again = producer.submit([shared / "notes"])  # idempotent: nothing re-embedded
        again_done = wait_done(producer.board, again.job_id)
        letters = producer.board.dead_letters()
    finally:
        producer.close()
        worker.stop()
    assert done.counts["done"] == 9 and done.counts["failed"] == 1
    assert sum(done.counts.values()) == done.files_total == 10
    assert done.failures[0]["path"] == str(poison) and "PDF" in done.failures[0]["error"]
    assert any(letter["path"] == str(poison) for letter in letters)
    assert again_done.counts["unchanged"] == 9 and again_done.counts["failed"] == 1
    log = (tmp_path / "worker.log").read_text()
    assert "(2 at once)" in log
    sources, parents, passages = stored(env, embedder)
    assert sources == sorted(str(p) for p in (shared / "notes").glob("note-*.txt"))
    (poison).unlink()
    assert (parents, passages) == clean_run(tmp_path, shared / "notes", embedder)


def test_kill9_mid_file_redelivers_the_task_and_the_store_matches_a_clean_run(
    redis_server, tmp_path, embedder
):
    shared = tmp_path / "shared"
    write_corpus(shared / "big", 1, words=40_000, seed=11)  # ~10 s of embedding
    write_corpus(shared / "small", 2, seed=12)
    env = lease_settings(tmp_path, redis_server, shared, 10)
    worker, producer = started_worker(env, tmp_path / "worker.log")
    board = producer.board
    big = str(shared / "big" / "note-000.txt")
    try:
        job = producer.submit([shared / "big", shared / "small"])
        wait_for(
            polled(lambda: board.states(job.job_id, [big])[big] == "running"),
            60,
            "the big file to start",
        )
        time.sleep(2.0)  # inside its parse/embedding
        worker.kill9()
        time.sleep(1.0)
        assert board.states(job.job_id, [big])[big] == "running"  # nobody acknowledged it
        assert board.get(job.job_id).status != "done"
        worker.start()  # the same command again
        done = wait_done(board, job.job_id, timeout=300)
    finally:
        producer.close()
        worker.stop()
    assert done.counts["done"] == 3 and done.counts["failed"] == 0
    sources, parents, passages = stored(env, embedder)
    assert len(sources) == 3
    clean = tmp_path / "clean-copy"
    for folder in ("big", "small"):
        for path in (shared / folder).iterdir():
            (clean / folder).mkdir(parents=True, exist_ok=True)
            (clean / folder / path.name).write_bytes(path.read_bytes())
    assert (parents, passages) == clean_run(tmp_path, clean, embedder)


def test_redis_down_the_cli_says_so_nothing_is_lost_and_work_resumes(redis_server, tmp_path):
    shared = tmp_path / "shared"
    write_corpus(shared / "a", 2, seed=1)
    write_corpus(shared / "b", 2, seed=2)
    # Celery can come back from the outage deaf (ingest.queue.watchdog): restarted in 10 s.
    env = queue_settings(tmp_path, redis_server, shared, RAG_QUEUE_STALL_S="10")
    cli_env = queue_env(env)

    def enqueue(*paths: Path, wait: bool = False) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "ingest", *map(str, paths), "--json"]
        return subprocess.run(
            args + ([] if wait else ["--no-wait"]),
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # A job enqueued while no worker runs survives a Redis restart (AOF).
    queued = enqueue(shared / "a")
    assert queued.returncode == 0, queued.stderr
    job_a = json.loads(queued.stdout)["job_id"]
    redis_server.stop()
    started = time.monotonic()
    refused = enqueue(shared / "b")
    assert refused.returncode == 2
    assert "ingestion queue (Redis)" in refused.stderr and "Traceback" not in refused.stderr
    assert time.monotonic() - started < 30
    redis_server.start()
    worker = WorkerProcess(cli_env, tmp_path / "worker.log")
    worker.start()
    try:
        board = board_for(env)
        assert wait_done(board, job_a).counts["done"] == 2
        # Redis goes away under a running worker and comes back: it reconnects.
        redis_server.stop()
        time.sleep(2)
        redis_server.start()
        result = enqueue(shared / "b", wait=True)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["status"] == "done" and summary["counts"]["done"] == 2
    finally:
        worker.stop()


def test_embedding_server_outage_retries_then_dead_letters_and_recovers(
    redis_server, tmp_path, embedding_server
):
    from tests.helpers.queue import EmbeddingProxy
    from tests.helpers.servers import serve

    shared = tmp_path / "shared"
    write_corpus(shared / "first", 2, seed=3)
    write_corpus(shared / "second", 2, seed=4)
    proxy = EmbeddingProxy(embedding_server)
    with serve(proxy.app) as proxy_url:
        env = queue_settings(
            tmp_path,
            redis_server,
            shared,
            RAG_EMBEDDING_URL=f"{proxy_url}/v1",
            RAG_EMBEDDING_RETRIES="0",
            RAG_QUEUE_MAX_RETRIES="2",
            RAG_QUEUE_RETRY_BACKOFF_S="1.5",
            RAG_QUEUE_BATCH_FILES="1",
        )
        worker = WorkerProcess(queue_env(env), tmp_path / "worker.log", concurrency=1)
        worker.start()  # checks the server's probe vectors: it must be up now
        producer = Producer(as_settings(env))
        board = producer.board
        try:
            proxy.down = True
            first = producer.submit([shared / "first"])
            given_up = wait_done(board, first.job_id, timeout=120)
            second = producer.submit([shared / "second"])
            wait_for(
                lambda: board.get(second.job_id).counts["retrying"] >= 1,
                60,
                "a retry of the second job",
            )
            retrying = board.get(second.job_id).retrying
            proxy.down = False
            recovered = wait_done(board, second.job_id, timeout=180)
            letters = board.dead_letters()
            outcomes = board.outcomes()
        finally:
            producer.close()
            worker.stop()
    assert given_up.counts["failed"] == 2 and given_up.counts["done"] == 0
    for failure in given_up.failures:
        assert "gave up after 2 retries" in failure["error"]
        assert "embedding" in failure["error"] and "503" in failure["error"]
    assert {letter["path"] for letter in letters} >= {f["path"] for f in given_up.failures}
    assert retrying and "503" in retrying[0]["error"]
    assert recovered.counts["done"] == 2 and recovered.counts["failed"] == 0
    assert outcomes["retried"] >= 5 and proxy.refused >= 5


def test_a_sentinel_broker_url_finds_the_master(redis_server, tmp_path):
    """Redis highly available through Sentinel is configuration: the job board and Celery's
    producer find the master from a real redis-sentinel."""
    from tests.helpers.servers import free_port

    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor rag 127.0.0.1 {redis_server.port} 1\n"
    )
    sentinel = subprocess.Popen(
        ["redis-server", str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    shared = tmp_path / "shared"
    write_corpus(shared, 2)
    try:
        env = queue_settings(
            tmp_path,
            redis_server,
            shared,
            RAG_BROKER_URL=f"sentinel://127.0.0.1:{port}/0",
            RAG_QUEUE_SENTINEL_MASTER="rag",
        )

        def master_known() -> bool:
            try:
                board_for(env).ping()
                return True
            except Exception:
                return False

        wait_for(master_known, 30, "the sentinel to know the master")
        producer = Producer(as_settings(env))
        try:
            job = producer.submit([shared], origin="test")
        finally:
            producer.close()
        import redis

        direct = redis.Redis(port=redis_server.port)
        assert direct.llen("rag-ingest") == 1  # the task reached the master's queue
        assert JobBoard.connect(redis_server.url, "rag:rag").get(job.job_id).files_total == 2
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=20)
