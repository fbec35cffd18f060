"""A queue job records who submitted it (an ingester sees only its own jobs)."""

from __future__ import annotations

from ingest.jobs.queued import view_of
from ingest.queue.job_board import JobBoard


def test_the_board_keeps_a_jobs_owner_and_older_jobs_have_none(redis_server):
    board = JobBoard.connect(redis_server.url, "t")
    board.create(
        "j", origin="request", paths=["/x"], prune=False, files=["a"], tasks=["1"], owner="ivan"
    )
    board.create("old", origin="cli", paths=["/x"], prune=False, files=["a"], tasks=["1"])
    assert board.get("j").owner == "ivan"
    assert view_of(board.get("j")).owner == "ivan"
    assert view_of(board.get("old")).owner == ""
