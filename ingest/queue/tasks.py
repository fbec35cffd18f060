"""The queue's tasks: ingest a batch of files, prune a folder. They run inside a worker
process that ``install``s its context (the store, the embedder, the job board) first.

Faults are sorted once, here: a ``TransientFailure`` (store or embedding server) retries
the task with exponential backoff, up to ``RAG_QUEUE_MAX_RETRIES``, then its unfinished
files go to the dead letters with the last fault; a file that fails for itself (a parse
failure, a file outside the shared roots: retrying cannot help) is failed at once and
dead-lettered with its reason, while the other files of the task carry on. A task whose
worker dies each time it runs it (a file that kills the process) is started
``RAG_QUEUE_MAX_DELIVERIES`` times; its next delivery dead-letters its unfinished files
with that reason instead of running them.

Every way a task ends for good strikes it off its job (``JobBoard.finish_task``; a retry
is not an end), so a job is finished once its last task is, and a redelivered file stored by
an earlier delivery that could not report it (its worker died, Redis was away) counts
``done``, not ``unchanged``. Board writes wait out a short Redis outage (``_Patient``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from celery import Celery, Task

from ingest.files.access import JobAccess
from ingest.files.identity import canonical_source, display_path
from ingest.indexer import Indexer
from ingest.outcomes import FileOutcome, Outcome, TransientFailure
from ingest.queue.app import INGEST_TASK, PRUNE_TASK
from ingest.queue.heartbeat import Heartbeat
from ingest.queue.job_board import FileState, JobBoard
from rag import tracing
from rag.documents import document_id
from rag.settings import QueueSettings

_T = TypeVar("_T")

log = logging.getLogger(__name__)

#: A file's state on the job board, from its outcome in the run.
_BOARD_STATE: dict[Outcome, FileState] = {Outcome.INGESTED: "done", Outcome.UNCHANGED: "unchanged"}
#: The reason of a file the run did not reach (the walk found nothing at its path).
_NOT_FOUND = "the worker found no such file under its shared roots"


@dataclass
class TaskContext:
    queue: QueueSettings  # the queue group: deliveries, retries, visibility
    worker: Indexer
    board: JobBoard
    heartbeat: Heartbeat | None = None


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


def ingest_files(
    task: Task, job_id: str, paths: list[str], access: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``access``: the job's ``JobAccess.to_json`` (absent from tasks of earlier versions:
    nothing given)."""
    global _active
    ctx = _ctx()
    with _active_lock:
        _active += 1
    try:
        with (
            tracing.attached(tracing.extract(trace_headers(task.request))),
            tracing.span(
                "ingest.task",
                rag_job_id=job_id,
                rag_files=len(paths),
                rag_retries=task.request.retries or 0,
            ),
        ):
            return _ingest_files(task, ctx, job_id, paths, JobAccess.from_json(access))
    finally:
        with _active_lock:
            _active -= 1
        tag = delivery_tag(task.request)
        if tag and ctx.heartbeat is not None:
            ctx.heartbeat.release(tag)  # acknowledged next: no more beats for it


def _ingest_files(
    task: Task, ctx: TaskContext, job_id: str, paths: list[str], access: JobAccess
) -> dict[str, Any]:
    board = ctx.board
    patient = _Patient(ctx.queue.queue_visibility_timeout_s)
    task_id = str(task.request.id)
    starts = patient(board.delivered, job_id, f"{task_id}:{task.request.retries}")
    states = patient(board.states, job_id, paths)
    todo = [p for p in paths if states.get(p) not in ("done", "unchanged")]
    limit = ctx.queue.queue_max_deliveries
    if todo and starts > limit:  # its worker died (or was killed) every time it ran it
        reason = (
            f"started {starts - 1} times without finishing (its worker died or was killed "
            "each time); not started again"
        )
        log.error("job %s: task %s given up: %s", job_id, task_id, reason)
        patient(_fail, board, job_id, todo, reason)
        patient(board.finish_task, job_id, task_id)
        return {"failed": len(todo)}
    if not todo:
        patient(board.finish_task, job_id, task_id)
        return {"skipped": len(paths)}  # a redelivery of a task that had finished
    patient(board.move, job_id, todo, "running")
    try:
        summary = ctx.worker.run([Path(p) for p in todo], access=access)
    except TransientFailure as exc:
        return _retry_or_give_up(task, ctx, job_id, todo, exc)
    except Exception as exc:  # a bug: no retry can fix it; say so per file
        log.exception("ingest task of job %s failed", job_id)
        patient(_fail, board, job_id, todo, f"internal error: {type(exc).__name__}: {exc}")
        patient(board.finish_task, job_id, task_id)
        return {"failed": len(todo)}
    outcomes: dict[str, FileOutcome] = {}
    for named in summary.outcomes:  # by the name the task gave (the path as walked)
        outcomes.setdefault(named.source, named)
        outcomes.setdefault(display_path(named.path), named)
    earlier = {p for p in todo if states.get(p) in ("running", "retrying")}
    by_state: dict[FileState, list[str]] = {}
    reasons: dict[str, str] = {}
    for path in todo:  # the task's paths are the display paths the producer walked
        outcome = outcomes.get(path)
        state: FileState = _BOARD_STATE.get(outcome.state, "failed") if outcome else "failed"
        if state == "unchanged" and path in earlier and _stored_by_job(ctx, board, job_id, path):
            state = "done"  # an earlier delivery stored it, then could not report (Redis)
        if state == "failed":  # each with its own reason
            reasons[path] = (outcome.error if outcome else "") or _NOT_FOUND
        by_state.setdefault(state, []).append(path)
    patient(_settle, board, job_id, task_id, by_state, reasons)
    return {state: len(paths) for state, paths in by_state.items()}


def _settle(
    board: JobBoard,
    job_id: str,
    task_id: str,
    by_state: dict[FileState, list[str]],
    reasons: dict[str, str],
) -> None:
    for path, reason in reasons.items():
        _fail(board, job_id, [path], reason)
    for settled in _BOARD_STATE.values():  # done, unchanged: one round trip per state
        board.move(job_id, by_state.get(settled, []), settled)
    board.finish_task(job_id, task_id)


def _stored_by_job(ctx: TaskContext, board: JobBoard, job_id: str, path: str) -> bool:
    """The stored document of ``path`` was written since the job was created: an earlier
    delivery of this task ingested it (and died, or lost Redis, before saying so)."""
    created = board.created_at(job_id)
    source = canonical_source(os.path.realpath(path))
    try:
        record = ctx.worker.store.documents.get_document(document_id(source))
    except Exception:  # the store is away: "unchanged" is what this delivery saw
        return False
    stamped = record.ingested_at if record is not None else None
    return created is not None and stamped is not None and stamped >= created


def _fail(board: JobBoard, job_id: str, paths: list[str], reason: str) -> None:
    for path in board.move(job_id, paths, "failed", reason):
        board.dead_letter(job_id, path, reason)


def _retry_or_give_up(
    task: Task, ctx: TaskContext, job_id: str, paths: list[str], exc: TransientFailure
) -> dict[str, Any]:
    attempt = task.request.retries
    board = ctx.board
    patient = _Patient(ctx.queue.queue_visibility_timeout_s)
    if attempt >= ctx.queue.queue_max_retries:
        patient(_fail, board, job_id, paths, f"gave up after {attempt} retries: {exc}")
        patient(board.finish_task, job_id, str(task.request.id))
        return {"failed": len(paths)}
    patient(board.move, job_id, paths, "retrying", str(exc))
    board.count_retry()
    delay = ctx.queue.queue_retry_backoff_s * (2**attempt)
    log.warning(
        "job %s: %d file(s) retry in %.0f s (attempt %d of %d): %s",
        job_id,
        len(paths),
        delay,
        attempt + 1,
        ctx.queue.queue_max_retries,
        exc,
    )
    raise task.retry(countdown=delay, max_retries=ctx.queue.queue_max_retries + 1, exc=exc)


class _Patient:
    """Calls the job board through a Redis outage of up to ``patience_s``: a task that has
    done its work reports it once Redis is back rather than failing (which would leave its
    files ``running`` until a redelivery)."""

    def __init__(self, patience_s: float) -> None:
        self.deadline = time.monotonic() + patience_s

    def __call__(self, call: Callable[..., _T], *args: Any) -> _T:
        pause = 0.5
        while True:
            try:
                return call(*args)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > self.deadline:
                    raise
                log.warning("the job board (Redis) is unreachable, trying again: %s", exc)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)


def prune_roots(task: Task, job_id: str, roots: list[str]) -> dict[str, Any]:
    ctx = _ctx()
    patient = _Patient(ctx.queue.queue_visibility_timeout_s)
    try:
        removed = ctx.worker.prune([Path(r) for r in roots])
        patient(ctx.board.add_removed, job_id, removed)
    finally:  # done or failed, it will not run again: its job need not wait for it
        patient(ctx.board.finish_task, job_id, str(task.request.id))
    return {"removed": removed}


def trace_headers(request: Any) -> dict[str, str]:
    """The trace context the producer put in the task's headers (Celery's protocol 2 puts a
    custom header on the request itself; older paths under ``request.headers``)."""
    found: dict[str, str] = {}
    nested = getattr(request, "headers", None) or {}
    for key in ("traceparent", "tracestate"):
        value = getattr(request, key, None) or (
            nested.get(key) if isinstance(nested, dict) else None
        )
        if isinstance(value, str):
            found[key] = value
    return found


def delivery_tag(request: Any) -> str | None:
    """A running task's delivery tag (kombu's message property)."""
    properties = getattr(request, "properties", None) or {}
    tag = properties.get("delivery_tag")
    return str(tag) if tag else None


def register(app: Celery) -> None:
    app.task(name=INGEST_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(ingest_files)
    app.task(name=PRUNE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(prune_roots)
