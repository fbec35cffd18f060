"""Ingestion jobs of the queue, kept in Redis beside it: what each file of a job is doing.

A job is its files; each file moves queued -> running -> (retrying ->) done | unchanged |
failed, and the job's counts move with it in one atomic step (a Lua script), so a task
delivered twice (its worker was killed) or retried never counts a file twice. Failed files
keep their reason; permanent failures and tasks out of retries are also appended to the
dead letters (capped). Outcome totals over all jobs feed Prometheus.

A job is also its tasks: the producer records their ids, and a task that ends for good
(whatever became of its files: done, failed, given up, dead-lettered) is struck off
(``finish_task``). A job with no task left is finished whatever its counts say: a file still
open then (no task will ever reach it) is failed with ``NOT_PROCESSED``, so no job can stay
``running`` with nothing left to run it. Every delivery of a task is counted
(``delivered``), so a task whose worker dies each time can be given up.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import redis

FileState = Literal["queued", "running", "retrying", "done", "unchanged", "failed"]
STATES: tuple[FileState, ...] = ("queued", "running", "retrying", "done", "unchanged", "failed")
_FINAL = ("done", "unchanged", "failed")
_JOB_TTL_S = 30 * 24 * 3600  # job records are kept a month
_DEAD_LETTERS_KEPT = 10_000
_FAILURES_SHOWN = 100
_OPEN = ("queued", "running", "retrying")
#: The reason of a file still open when its job has no task left.
NOT_PROCESSED = "not processed: the job's tasks ended without reaching this file"

# KEYS: files hash, counts hash, errors hash, outcomes hash. ARGV: new state, error,
# then paths. Returns the paths that moved. A finished file stays finished (a redelivered
# task finding it unchanged leaves it "done"), except that a failed one may still succeed;
# counts move only on a real change.
_MOVE = """
local moved = {}
for i = 3, #ARGV do
  local path = ARGV[i]
  local old = redis.call('HGET', KEYS[1], path)
  local final = (old == 'done' or old == 'unchanged' or old == 'failed')
  local to_final = (ARGV[1] == 'done' or ARGV[1] == 'unchanged' or ARGV[1] == 'failed')
  local allowed = (not final) or (old == 'failed' and to_final and ARGV[1] ~= 'failed')
  if old ~= ARGV[1] and allowed then
    redis.call('HSET', KEYS[1], path, ARGV[1])
    if old then redis.call('HINCRBY', KEYS[2], old, -1) end
    redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
    if ARGV[2] ~= '' then redis.call('HSET', KEYS[3], path, ARGV[2])
    elseif ARGV[1] ~= 'retrying' then redis.call('HDEL', KEYS[3], path) end
    if to_final and not final then redis.call('HINCRBY', KEYS[4], ARGV[1], 1) end
    table.insert(moved, path)
  end
end
return moved
"""


class QueueUnavailable(RuntimeError):
    """Redis cannot be reached: nothing was (or will be) enqueued."""


@dataclass
class JobStatus:
    """One job as the API, the CLI and the page show it."""

    job_id: str
    status: Literal["queued", "running", "done"]
    origin: str
    paths: list[str]
    prune: bool
    created_at: float
    finished_at: float | None
    files_total: int
    tasks_total: int
    counts: dict[str, int]
    #: stored documents whose files were gone (``prune``)
    removed: int = 0
    #: the principal that submitted it ('' for the service's own jobs)
    owner: str = ""
    #: failed files with their reasons (the first 100), and retrying ones with the last fault
    failures: list[dict[str, str]] = field(default_factory=list)
    retrying: list[dict[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in _FINAL)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files_finished"] = self.finished
        return data


class JobBoard:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._move = client.register_script(_MOVE)

    @classmethod
    def connect(
        cls, url: str, prefix: str, timeout_s: float = 5.0, sentinel_master: str | None = None
    ) -> JobBoard:
        """``redis://`` (one server or a managed endpoint), or Celery's Sentinel form
        ``sentinel://h1:26379;sentinel://h2:26379/0`` with the master's name."""
        options = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "decode_responses": True,
        }
        if url.startswith("sentinel://"):
            from urllib.parse import urlparse

            from redis.sentinel import Sentinel

            parts = [
                urlparse(u if u.startswith("sentinel://") else f"sentinel://{u}")
                for u in url.split(";")
            ]
            db = int((parts[-1].path or "/0").strip("/") or 0)
            sentinel = Sentinel(
                [(p.hostname, p.port or 26379) for p in parts], socket_timeout=timeout_s
            )
            client = sentinel.master_for(
                sentinel_master or "mymaster", db=db, password=parts[0].password, **options
            )
            return cls(client, prefix)
        return cls(redis.Redis.from_url(url, **options), prefix)

    def ping(self) -> None:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            raise QueueUnavailable(f"the ingestion queue (Redis) is unreachable: {exc}") from exc

    # --- keys ------------------------------------------------------------------------------
    def _key(self, job_id: str, part: str) -> str:
        return f"{self.prefix}:job:{job_id}:{part}"

    @property
    def _dead_key(self) -> str:
        return f"{self.prefix}:dead-letters"

    @property
    def _outcomes_key(self) -> str:
        return f"{self.prefix}:outcomes"

    # --- writes ----------------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        *,
        origin: str,
        paths: list[str],
        prune: bool,
        files: list[str],
        tasks: list[str],
        owner: str = "",
    ) -> None:
        """``files``: the job's distinct files (display paths); ``tasks``: the ids of the
        tasks that will be sent for it (struck off by ``finish_task``)."""
        meta = {
            "job_id": job_id,
            "origin": origin,
            "owner": owner,
            "paths": json.dumps(paths),
            "prune": int(prune),
            "created_at": time.time(),
            "files_total": len(files),
            "tasks_total": len(tasks),
            "tracks_tasks": 1,
            "enqueued": 0,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(job_id, "meta"), mapping=cast(Any, meta))
        for start in range(0, len(files), 10_000):
            part = files[start : start + 10_000]
            pipe.hset(self._key(job_id, "files"), mapping={p: "queued" for p in part})
        pipe.hset(self._key(job_id, "counts"), mapping={"queued": len(files)})
        if tasks:
            pipe.sadd(self._key(job_id, "tasks"), *tasks)
        for kind in ("meta", "files", "counts", "errors", "tasks"):
            pipe.expire(self._key(job_id, kind), _JOB_TTL_S)
        pipe.zadd(f"{self.prefix}:jobs", {job_id: time.time()})
        pipe.execute()

    def mark_enqueued(self, job_id: str) -> None:
        self.redis.hset(self._key(job_id, "meta"), "enqueued", 1)
        self._maybe_finish(job_id)  # a job with nothing to do is finished at once

    def move(self, job_id: str, paths: list[str], state: FileState, error: str = "") -> list[str]:
        """Move files to ``state``; returns those that moved (see ``_MOVE``)."""
        if not paths:
            return []
        moved = self._moved(job_id, paths, state, error)
        if moved and state in _FINAL:
            self._maybe_finish(job_id)
        return moved

    def _moved(self, job_id: str, paths: list[str], state: FileState, error: str) -> list[str]:
        return list(
            self._move(
                keys=[
                    self._key(job_id, "files"),
                    self._key(job_id, "counts"),
                    self._key(job_id, "errors"),
                    self._outcomes_key,
                ],
                args=[state, error[:2000], *paths],
            )
        )

    def states(self, job_id: str, paths: list[str]) -> dict[str, str | None]:
        values = self.redis.hmget(self._key(job_id, "files"), paths) if paths else []
        return dict(zip(paths, cast(list[str | None], values)))

    def add_removed(self, job_id: str, removed: int) -> None:
        self.redis.hincrby(self._key(job_id, "meta"), "removed", removed)

    def dead_letter(self, job_id: str, path: str, reason: str) -> None:
        record = json.dumps(
            {"job_id": job_id, "path": path, "reason": reason[:2000], "at": time.time()}
        )
        pipe = self.redis.pipeline()
        pipe.lpush(self._dead_key, record)
        pipe.ltrim(self._dead_key, 0, _DEAD_LETTERS_KEPT - 1)
        pipe.execute()

    def count_retry(self) -> None:
        self.redis.hincrby(self._outcomes_key, "retried", 1)

    def delivered(self, job_id: str, delivery: str) -> int:
        """Count one more start of a task's delivery (``delivery``: the task id and its
        retry number, as a retry is a new message); how many there have been."""
        key = self._key(job_id, "deliveries")
        pipe = self.redis.pipeline()
        pipe.hincrby(key, delivery, 1)
        pipe.expire(key, _JOB_TTL_S)
        return int(pipe.execute()[0])

    def deliveries(self, job_id: str) -> dict[str, int]:
        """Starts of each of the job's task deliveries (``<task id>:<retry>`` -> count)."""
        raw = self.redis.hgetall(self._key(job_id, "deliveries"))
        return {str(k): int(v) for k, v in raw.items()}

    def created_at(self, job_id: str) -> float | None:
        value = self.redis.hget(self._key(job_id, "meta"), "created_at")
        return float(value) if value else None

    def finish_task(self, job_id: str, task_id: str) -> None:
        """The task ended for good (not a retry): strike it off; the last one finishes the
        job (``_maybe_finish``)."""
        self.redis.srem(self._key(job_id, "tasks"), task_id)
        self._maybe_finish(job_id)

    def _maybe_finish(self, job_id: str) -> None:
        meta_key = self._key(job_id, "meta")
        meta = self.redis.hmget(meta_key, ["enqueued", "tracks_tasks"])
        if meta[0] != "1":
            return  # the producer is still sending: it calls again (``mark_enqueued``)
        if meta[1] == "1" and self.redis.scard(self._key(job_id, "tasks")) == 0:
            self._fold_open(job_id)  # no task left: nothing can move these files any more
        counts = self._counts(job_id)
        if sum(counts[s] for s in _OPEN) == 0:
            self.redis.hsetnx(meta_key, "finished_at", time.time())

    def _fold_open(self, job_id: str) -> None:
        counts = self._counts(job_id)
        if not sum(counts[s] for s in _OPEN):
            return
        files = self.redis.hgetall(self._key(job_id, "files"))
        left = [str(path) for path, state in files.items() if state in _OPEN]
        for start in range(0, len(left), 1000):
            part = left[start : start + 1000]
            for path in self._moved(job_id, part, "failed", NOT_PROCESSED):
                self.dead_letter(job_id, path, NOT_PROCESSED)

    # --- reads -----------------------------------------------------------------------------
    def _counts(self, job_id: str) -> dict[str, int]:
        raw = self.redis.hgetall(self._key(job_id, "counts"))
        return {s: int(raw.get(s, 0)) for s in STATES}

    def get(self, job_id: str) -> JobStatus | None:
        meta = cast(dict[str, str], self.redis.hgetall(self._key(job_id, "meta")))
        if not meta:
            return None
        counts = self._counts(job_id)
        failures: list[dict[str, str]] = []
        retrying: list[dict[str, str]] = []
        if counts["failed"] or counts["retrying"]:
            errors = cast(dict[str, str], self.redis.hgetall(self._key(job_id, "errors")))
            states = self.redis.hmget(self._key(job_id, "files"), list(errors)) if errors else []
            for (path, error), state in zip(errors.items(), states):
                target = failures if state == "failed" else retrying
                if len(target) < _FAILURES_SHOWN:
                    target.append({"path": path, "error": error})
        open_work = counts["queued"] + counts["running"] + counts["retrying"]
        if meta.get("enqueued") == "1" and open_work == 0:
            status: Literal["queued", "running", "done"] = "done"
        elif not (counts["running"] or counts["retrying"] or counts["done"] or counts["unchanged"]):
            status = "queued"
        else:
            status = "running"
        finished_at = meta.get("finished_at")
        return JobStatus(
            job_id=job_id,
            status=status,
            origin=meta.get("origin", ""),
            owner=meta.get("owner", ""),
            paths=json.loads(meta.get("paths", "[]")),
            prune=meta.get("prune") == "1",
            created_at=float(meta["created_at"]),
            finished_at=float(finished_at) if finished_at else None,
            files_total=int(meta["files_total"]),
            tasks_total=int(meta["tasks_total"]),
            counts=counts,
            removed=int(meta.get("removed", 0)),
            failures=sorted(failures, key=lambda f: f["path"]),
            retrying=sorted(retrying, key=lambda f: f["path"]),
        )

    def recent(self, limit: int = 20) -> list[JobStatus]:
        ids = cast(list[str], self.redis.zrevrange(f"{self.prefix}:jobs", 0, limit - 1))
        return [job for job in (self.get(i) for i in ids) if job is not None]

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.redis.lrange(self._dead_key, 0, limit - 1)]

    def outcomes(self) -> dict[str, int]:
        raw = cast(dict[str, str], self.redis.hgetall(self._outcomes_key))
        return {k: int(v) for k, v in raw.items()}
