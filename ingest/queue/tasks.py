"""The queue's tasks: ingest a batch of files, prune a folder. They run inside a worker
process that ``install``s its context (the store, the embedder, the job board) first.

Faults are sorted once, here: a ``TransientFailure`` (store or embedding server) retries
the task with exponential backoff, up to ``RAG_QUEUE_MAX_RETRIES``, then its unfinished
files go to the dead letters with the last fault; a file that fails for itself (a parse
failure, a file outside the shared roots: retrying cannot help) is failed at once and
dead-lettered with its reason, while the other files of the task carry on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, Task

from ingest.indexer import Indexer
from ingest.outcomes import FileOutcome, Outcome, TransientFailure
from ingest.queue.app import INGEST_TASK, PRUNE_TASK
from ingest.queue.job_board import FileState, JobBoard
from rag.settings import Settings

log = logging.getLogger(__name__)

#: A file's state on the job board, from its outcome in the run.
_BOARD_STATE: dict[Outcome, FileState] = {Outcome.INGESTED: "done", Outcome.UNCHANGED: "unchanged"}
#: The reason of a file the run did not reach (the walk found nothing at its path).
_NOT_FOUND = "the worker found no such file under its shared roots"


@dataclass
class TaskContext:
    settings: Settings
    worker: Indexer
    board: JobBoard


_context: TaskContext | None = None
_active = 0
_active_lock = threading.Lock()


def active_tasks() -> int:
    """Tasks of this process running now (a shutdown waits for them, not for Redis)."""
    return _active


def install(context: TaskContext) -> None:
    global _context
    _context = context


def _ctx() -> TaskContext:
    if _context is None:
        raise RuntimeError("the ingestion worker context is not installed")
    return _context


def ingest_files(task: Task, job_id: str, paths: list[str]) -> dict[str, Any]:
    global _active
    with _active_lock:
        _active += 1
    try:
        return _ingest_files(task, job_id, paths)
    finally:
        with _active_lock:
            _active -= 1


def _ingest_files(task: Task, job_id: str, paths: list[str]) -> dict[str, Any]:
    ctx = _ctx()
    board = ctx.board
    states = board.states(job_id, paths)
    todo = [p for p in paths if states.get(p) not in ("done", "unchanged")]
    if not todo:
        return {"skipped": len(paths)}  # a redelivery of a task that had finished
    board.move(job_id, todo, "running")
    try:
        summary = ctx.worker.run([Path(p) for p in todo])
    except TransientFailure as exc:
        return _retry_or_give_up(task, ctx, job_id, todo, exc)
    except Exception as exc:  # a bug: no retry can fix it; say so per file
        log.exception("ingest task of job %s failed", job_id)
        _fail(board, job_id, todo, f"internal error: {type(exc).__name__}: {exc}")
        return {"failed": len(todo)}
    outcomes: dict[str, FileOutcome] = {o.source: o for o in summary.outcomes}
    by_state: dict[FileState, list[str]] = {}
    for path in todo:  # the task's paths are the display paths the producer walked
        outcome = outcomes.get(path)
        state: FileState = _BOARD_STATE.get(outcome.state, "failed") if outcome else "failed"
        if state == "failed":  # each with its own reason
            _fail(board, job_id, [path], (outcome.error if outcome else "") or _NOT_FOUND)
        by_state.setdefault(state, []).append(path)
    for settled in _BOARD_STATE.values():  # done, unchanged: one round trip per state
        board.move(job_id, by_state.get(settled, []), settled)
    return {state: len(paths) for state, paths in by_state.items()}


def _fail(board: JobBoard, job_id: str, paths: list[str], reason: str) -> None:
    for path in board.move(job_id, paths, "failed", reason):
        board.dead_letter(job_id, path, reason)


def _retry_or_give_up(
    task: Task, ctx: TaskContext, job_id: str, paths: list[str], exc: TransientFailure
) -> dict[str, Any]:
    attempt = task.request.retries
    board = ctx.board
    if attempt >= ctx.settings.queue_max_retries:
        _fail(board, job_id, paths, f"gave up after {attempt} retries: {exc}")
        return {"failed": len(paths)}
    board.move(job_id, paths, "retrying", str(exc))
    board.count_retry()
    delay = ctx.settings.queue_retry_backoff_s * (2**attempt)
    log.warning(
        "job %s: %d file(s) retry in %.0f s (attempt %d of %d): %s",
        job_id,
        len(paths),
        delay,
        attempt + 1,
        ctx.settings.queue_max_retries,
        exc,
    )
    raise task.retry(countdown=delay, max_retries=ctx.settings.queue_max_retries + 1, exc=exc)


def prune_roots(job_id: str, roots: list[str]) -> dict[str, Any]:
    ctx = _ctx()
    removed = ctx.worker.prune([Path(r) for r in roots])
    ctx.board.add_removed(job_id, removed)
    return {"removed": removed}


def register(app: Celery) -> None:
    app.task(name=INGEST_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(ingest_files)
    app.task(name=PRUNE_TASK, acks_late=True, reject_on_worker_lost=True)(prune_roots)
