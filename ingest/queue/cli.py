"""The CLI's queue side: enqueue and follow a job, show one, list dead letters, or run a
worker (``python -m ingest --worker``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis
from tqdm import tqdm

from ingest.queue.job_board import JobStatus, QueueUnavailable
from rag.settings import Settings


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def queue_main(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.broker_url:
        return _error(
            "the ingestion queue is not configured: set RAG_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    if args.worker:
        return _worker(settings, args)
    from ingest.queue.producer import OutsideSharedRoots, Producer

    producer = Producer(settings)
    try:
        if args.dead_letters:
            producer.board.ping()
            letters = producer.board.dead_letters()
            if args.json:
                print(json.dumps(letters, indent=2))
            for letter in letters if not args.json else []:
                print(f"{letter['job_id']} {letter['path']}: {letter['reason']}")
            return 0
        if args.job:
            producer.board.ping()
            job = producer.get(args.job)
            if job is None:
                return _error(f"no ingest job {args.job}")
            _show(job, args.json)
            return 1 if job.counts["failed"] else 0
        if not args.paths:
            return _error("name at least one file or folder under the shared roots")
        if args.recreate:
            return _error("--recreate needs --local (it drops the store this process opens)")
        try:
            job = producer.submit(
                args.paths, prune=args.prune, origin="cli", access=getattr(args, "access", None)
            )
        except (OutsideSharedRoots, FileNotFoundError) as exc:
            return _error(str(exc))
        if args.no_wait:
            print(json.dumps(job.as_dict()) if args.json else job.job_id)
            return 0
        print(
            f"ingest job {job.job_id}: {job.files_total} file(s) in {job.tasks_total} "
            f"task(s) on queue {settings.queue_name}",
            file=sys.stderr,
        )
        job = _follow(producer, job, show_bar=not args.json and sys.stderr.isatty())
        _show(job, args.json)
        return 1 if job.counts["failed"] else 0
    except QueueUnavailable as exc:
        return _error(str(exc))
    finally:
        producer.close()


def _follow(producer, job: JobStatus, show_bar: bool, poll_s: float = 0.5) -> JobStatus:
    """Poll until done; Redis going away meanwhile is reported, the job carries on."""
    bar = tqdm(total=job.files_total, unit="file", dynamic_ncols=True, disable=not show_bar)
    try:
        while True:
            current = producer.get(job.job_id)
            if current is None:
                raise QueueUnavailable(f"job {job.job_id} vanished from the queue's records")
            bar.n = current.finished
            c = current.counts
            bar.set_postfix_str(
                f"running {c['running']}, retrying {c['retrying']}, "
                f"failed {c['failed']}, waiting tasks {producer.queue_depth()}"
            )
            bar.refresh()
            if current.status == "done":
                return current
            time.sleep(poll_s)
    except redis.RedisError as exc:
        raise QueueUnavailable(
            f"lost the queue (Redis) while following job {job.job_id}: {exc}; the job "
            f"goes on when Redis is back: python -m ingest --job {job.job_id}"
        ) from exc
    finally:
        bar.close()


def _show(job: JobStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(job.as_dict(), indent=2))
        return
    c = job.counts
    print(
        f"job {job.job_id} {job.status}: files {job.files_total}, done {c['done']}, "
        f"unchanged {c['unchanged']}, failed {c['failed']}, queued {c['queued']}, "
        f"running {c['running']}, retrying {c['retrying']}, removed {job.removed}"
    )
    for item in job.retrying:
        print(f"RETRYING {item['path']}: {item['error']}")
    for item in job.failures:
        print(f"FAILED {item['path']}: {item['error']}")


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.queue.consumer import queue_ingest_worker, run_worker
    from rag.wiring import StartupError, open_index

    try:
        index = open_index(settings)
    except StartupError as exc:
        return _error(str(exc))
    store = index.store
    try:
        worker = queue_ingest_worker(settings, index.embedder, store)
    except StartupError as exc:  # OCR's languages missing
        store.close()
        return _error(str(exc))
    try:
        return run_worker(settings, worker, args.concurrency or settings.queue_concurrency)
    finally:
        store.close()
