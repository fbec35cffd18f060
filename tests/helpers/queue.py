"""Real queue workers (`python -m ingest --worker`) for the queue tests, their settings and
corpora, and a switchable proxy in front of the real embedding server (the only fake: it
injects the outage). Redis itself: ``bench.services.RedisServer``."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.services import RedisServer, wait_for
from ingest.queue.app import redis_prefix
from ingest.queue.job_board import JobBoard, JobStatus
from ingest.queue.producer import Producer
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """`python -m ingest --worker` with the given environment; its log is kept."""

    def __init__(
        self, env: dict[str, str], log: Path, concurrency: int = 1, module: str = "ingest"
    ) -> None:
        self.env, self.log, self.concurrency, self.module = env, log, concurrency, module
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start, and wait until this start (not an earlier one in the same log) is ready."""
        out = self.log.open("ab")
        offset = out.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--worker", "--concurrency", str(self.concurrency)],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: b" ready." in self.log.read_bytes()[offset:] or self.process.poll() is not None,
            180,
            "the worker to connect",
        )
        assert self.process.poll() is None, self.log.read_text()[-3000:]

    def kill9(self) -> None:
        """The whole process group (the worker and its parser process), no warning."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def queue_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(settings_env)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


class EmbeddingProxy:
    """Forwards POST /v1/embeddings to the real server; while ``down``, answers 503."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.down = False
        self.refused = 0
        self.app = FastAPI()
        client = httpx.AsyncClient(timeout=120)

        @self.app.post("/v1/embeddings")
        async def embeddings(request: Request):
            if self.down:
                self.refused += 1
                return JSONResponse({"error": {"message": "injected outage"}}, status_code=503)
            answer = await client.post(
                f"{self.target}/embeddings",
                content=await request.body(),
                headers={"content-type": "application/json"},
            )
            return JSONResponse(answer.json(), status_code=answer.status_code)


_WORDS = (
    "harbor ledger quartz meadow signal copper falcon orchard basalt lantern ferry "
    "glacier timber saffron cobalt prairie beacon tundra violet ember canyon willow "
    "marble thistle comet delta granite kestrel lagoon nectar obsidian pewter"
).split()


def write_corpus(folder: Path, count: int, words: int = 300, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        body = " ".join(rng.choice(_WORDS) for _ in range(words))
        path = folder / f"note-{i:03d}.txt"
        path.write_text(f"Note {i} about item {rng.randint(0, 10**6)}.\n\n{body}\n")
        paths.append(path)
    return paths


def queue_settings(tmp_path: Path, redis: RedisServer, shared: Path, **extra: str) -> dict:
    return {
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BROKER_URL": redis.url,
        "RAG_INGEST_ROOTS": str(shared),
        "RAG_QUEUE_RESTORE_INTERVAL_S": "1",
        "RAG_QUEUE_VISIBILITY_TIMEOUT_S": "30",
        "RAG_QUEUE_BATCH_FILES": "2",
        "RAG_LOG_JSON": "false",
        **extra,
    }


def as_settings(env: dict) -> Settings:
    return Settings(**{k[4:].lower(): v for k, v in env.items() if k.startswith("RAG_")})


def board_for(env: dict) -> JobBoard:
    settings = as_settings(env)
    return JobBoard.connect(
        settings.broker_url or "",
        redis_prefix(settings.collection),
        sentinel_master=settings.queue_sentinel_master,
    )


def polled(check: Callable[[], Any]) -> Callable[[], Any]:
    """``check`` for ``wait_for``, a Redis that is slow to answer once (a loaded machine:
    the client's 5 s read timeout) read as "not yet" rather than failing the test."""

    def attempt() -> Any:
        try:
            return check()
        except redis.RedisError:
            return None

    return attempt


def wait_done(board: JobBoard, job_id: str, timeout: float = 240) -> JobStatus:
    return wait_for(
        polled(lambda: (j := board.get(job_id)) and j.status == "done" and j),
        timeout,
        f"job {job_id} to finish",
    )


def lease_settings(
    tmp_path: Path, redis: RedisServer, shared: Path, visibility_s: float, **extra: str
) -> dict:
    """``queue_settings`` for the redelivery tests: a worker unheard of for ``visibility_s``
    loses its task, and 0.1 MB batches (every large file a task of its own)."""
    return queue_settings(
        tmp_path,
        redis,
        shared,
        RAG_QUEUE_VISIBILITY_TIMEOUT_S=str(visibility_s),
        RAG_QUEUE_BATCH_MB="0.1",
        **extra,
    )


def started_worker(env: dict, log: Path, concurrency: int = 1) -> tuple[WorkerProcess, Producer]:
    """A worker of ``env`` started (``concurrency`` threads, its output in ``log``) and a
    producer of the same settings; the caller closes the producer and stops the worker."""
    worker = WorkerProcess(queue_env(env), log, concurrency=concurrency)
    worker.start()
    return worker, Producer(as_settings(env))
