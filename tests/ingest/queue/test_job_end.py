"""A queue job always ends: each file is listed once however it is named (a real worker and
Redis for every shape), and a job with no task left is finished whatever its counts say."""

from __future__ import annotations

import os
from pathlib import Path

from ingest.queue.job_board import NOT_PROCESSED, JobBoard
from ingest.queue.producer import Producer
from tests.helpers.queue import (
    WorkerProcess,
    as_settings,
    queue_env,
    queue_settings,
    wait_done,
    write_corpus,
)


def test_a_job_whose_tasks_all_ended_is_done_and_its_open_files_failed(redis_server):
    board = JobBoard.connect(redis_server.url, "t")
    board.create(
        "j", origin="test", paths=["/x"], prune=False, files=["a", "b", "c"], tasks=["1", "2"]
    )
    board.mark_enqueued("j")
    board.move("j", ["a"], "running")
    board.move("j", ["a"], "done")
    board.finish_task("j", "1")
    assert board.get("j").status == "running"  # task 2 may still reach b and c
    board.move("j", ["b"], "running")
    board.finish_task("j", "2")  # ...but it ended without finishing them
    job = board.get("j")
    assert job.status == "done" and job.finished_at is not None
    assert job.counts["done"] == 1 and job.counts["failed"] == 2
    assert sum(job.counts.values()) == job.files_total == 3
    assert {f["path"]: f["error"] for f in job.failures} == {"b": NOT_PROCESSED, "c": NOT_PROCESSED}
    assert {letter["path"] for letter in board.dead_letters()} == {"b", "c"}
    board.finish_task("j", "2")  # a second report of the same end changes nothing
    assert board.get("j").counts == job.counts


def test_every_duplicate_shape_ends_done_with_the_distinct_files(redis_server, tmp_path):
    shared = tmp_path / "shared"
    folder = shared / "notes"
    notes = write_corpus(folder, 3, seed=21)
    write_corpus(folder / "sub", 2, seed=22)
    os.symlink(notes[0], shared / "alias.txt")
    env = queue_settings(tmp_path, redis_server, shared, RAG_QUEUE_BATCH_FILES="1")
    shapes: dict[str, tuple[list[Path], int]] = {
        "the same folder twice": ([folder, folder], 5),
        "a folder and its own subfolder": ([folder / "sub", folder], 5),
        "the same file twice": ([notes[1], notes[1]], 1),
        "one file by three spellings": (
            [notes[0], folder / ".." / "notes" / notes[0].name, shared / "alias.txt"],
            1,
        ),
    }
    worker = WorkerProcess(queue_env(env), tmp_path / "worker.log", concurrency=2)
    worker.start()
    producer = Producer(as_settings(env))
    try:
        ended, named = {}, {}
        for shape, (paths, distinct) in shapes.items():
            job = producer.submit(paths)
            assert job.files_total == distinct, shape
            ended[shape] = wait_done(producer.board, job.job_id, timeout=180)
            files = producer.board.redis.hgetall(producer.board._key(job.job_id, "files"))
            named[job.job_id] = files
    finally:
        producer.close()
        worker.stop()
    for shape, (_, distinct) in shapes.items():
        job = ended[shape]
        assert job.status == "done", shape
        assert job.files_total == distinct and job.finished == distinct, shape
        assert job.counts["failed"] == 0, (shape, job.failures)
        assert job.counts["done"] + job.counts["unchanged"] == distinct, shape
    assert ended["the same folder twice"].counts["done"] == 5  # the first shape stored them
    spelled = ended["one file by three spellings"]
    assert named[spelled.job_id] == {str(notes[0]): "unchanged"}  # as first named
