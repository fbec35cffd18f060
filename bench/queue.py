"""The ingestion queue and the embedding server: throughput against the server's own.

Usage: python -m bench queue [--corpus squad|mixed] [--limit N] [--embedding-url URL]

In one run, on the same machine and files:
  1. the embedding server's bare throughput: the corpus's passages straight to
     ``POST /v1/embeddings`` (the ceiling of any worker fleet on that server);
  2. a worker process (`python -m ingest --worker`, embedded store, vectors from the server)
     consuming one job of the corpus with 1, then 2 tasks at once (each into a fresh store);
     job wall time from enqueue to the last file finished;
  3. the queue's overhead per task: the same job again (every file unchanged, one file per
     task) against the same files checked in-process without the queue;
  4. question embedding, one short text at a time: in-process vs the server (p50/p95).
Redis is started here (Debian's redis-server); the embedding server is started with
scripts/start_embeddings.sh unless ``--embedding-url`` names a running one.
Several worker *processes* need a Qdrant server (compose); here "2 workers" are two
consumer threads of one process, which share its parser process and the server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import MIXED, SQUAD, percentile, table, write_result
from bench.services import RedisServer, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _embedding_server(url: str | None, folder: Path) -> tuple[str, int | None]:
    if url:
        return url, None
    port = free_port()
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "start_embeddings.sh"), str(port)],
        env={**os.environ, "RAG_DATA_DIR": str(folder)},
        check=True,
        timeout=600,
    )
    return f"http://127.0.0.1:{port}/v1", int((folder / "embeddings.pid").read_text())


def _env(data: Path, broker: str, shared: Path, embedding_url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        {
            "RAG_DATA_DIR": str(data),
            "RAG_BROKER_URL": broker,
            "RAG_INGEST_ROOTS": str(shared),
            "RAG_EMBEDDING_URL": embedding_url,
            "RAG_QUEUE_VISIBILITY_TIMEOUT_S": "3600",
            "RAG_LOG_JSON": "false",
            "HF_HUB_OFFLINE": "1",
            "DO_NOT_TRACK": "1",
            **extra,
        }
    )
    if os.environ.get("RAG_MODEL_DIR"):
        env["RAG_MODEL_DIR"] = os.environ["RAG_MODEL_DIR"]
    return env


def _settings(env: dict):
    from rag.settings import Settings

    return Settings(**{k[4:].lower(): v for k, v in env.items() if k.startswith("RAG_")})


def _worker(env: dict, log: Path, concurrency: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "--worker", "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: b" ready." in log.read_bytes() or proc.poll() is not None, 300, "worker")
    if proc.poll() is not None:
        raise RuntimeError(log.read_text()[-2000:])
    return proc


def _job(env: dict, shared: Path) -> tuple[float, Any]:
    from ingest.queue.producer import Producer

    producer = Producer(_settings(env))
    try:
        started = time.perf_counter()
        job = producer.submit([shared])
        done = wait_for(
            lambda: (j := producer.get(job.job_id)) and j.status == "done" and j,
            7200,
            "the job",
            every=0.01,
        )
        return time.perf_counter() - started, done
    finally:
        producer.close()


def _passages_and_tokens(shared: Path) -> tuple[list[str], int]:
    """The corpus's passages as the worker cuts them, and its Llama-token count."""
    from ingest.files.identity import content_hash
    from ingest.files.walk import iter_files
    from ingest.indexer import Indexer
    from ingest.parsing.dispatch import parse_file
    from ingest.parsing.limits import ParseFailure, read_checked
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import Settings

    class _NoStore:
        pass

    settings = Settings()
    worker = Indexer(settings, SentenceTransformerEmbedder(settings), _NoStore())
    texts, tokens = [], 0
    for f in (f for f in iter_files(shared) if isinstance(f, Path)):
        try:
            data = read_checked(f, worker.limits)
            doc = parse_file(f, data, content_hash(data, worker.signature), worker.limits)
        except ParseFailure:
            continue
        parents = worker.chunker.parents(doc)
        tokens += sum(p.tokens for p in parents)
        texts += [p.text for parent in parents for p in parent.passages]
    return texts, tokens


def run(corpus: str, limit: int | None, embedding_url: str | None) -> dict[str, Any]:
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.embedding.server import ServerEmbedder
    from rag.settings import Settings

    source = SQUAD / "articles" if corpus == "squad" else MIXED
    work = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    shared = work / "shared"
    files = sorted(p for p in source.rglob("*") if p.is_file())[: limit or None]
    for f in files:
        target = shared / f.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    redis_server = RedisServer(work / "redis", fsync_always=False)  # as compose runs it
    redis_server.start()
    broker = redis_server.url
    url, server_pid = _embedding_server(embedding_url, work)
    result: dict[str, Any] = {"corpus": corpus, "files": len(files), "embedding_url": url}
    try:
        texts, tokens = _passages_and_tokens(shared)
        result.update(passages=len(texts), tokens=tokens)
        server = ServerEmbedder(Settings(embedding_url=url))
        server.embed_passages(["warm up"] * 8)
        started = time.perf_counter()
        for i in range(0, len(texts), 256):
            server.embed_passages(texts[i : i + 256])
        bare = time.perf_counter() - started
        result["server_bare_s"] = bare
        result["server_bare_tokens_per_s"] = tokens / bare
        runs = []
        for concurrency in (1, 2):
            data = work / f"data-{concurrency}"
            env = _env(data, broker, shared, url)
            proc = _worker(env, work / f"worker-{concurrency}.log", concurrency)
            try:
                seconds, job = _job(env, shared)
            finally:
                proc.terminate()
                proc.wait(timeout=120)
            runs.append(
                {
                    "workers": concurrency,
                    "seconds": seconds,
                    "tokens_per_s": tokens / seconds,
                    "of_server": bare / seconds,
                    "done": job.counts["done"],
                    "failed": job.counts["failed"],
                }
            )
        result["runs"] = runs
        # the queue's overhead: one file per task, all unchanged, vs the same check in-process
        env = _env(work / "data-1", broker, shared, url, RAG_QUEUE_BATCH_FILES="1")
        proc = _worker(env, work / "worker-overhead.log", 1)
        try:
            queued_s, job = _job(env, shared)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        from ingest.indexer import Indexer
        from rag.store.qdrant_store import QdrantStore

        settings = _settings(env)
        local = SentenceTransformerEmbedder(settings)
        store = QdrantStore(settings, local.name, local.dimension)
        try:
            worker = Indexer(settings, ServerEmbedder(settings), store)
            started = time.perf_counter()
            for f in sorted(p for p in shared.rglob("*") if p.is_file()):
                worker.run([f])  # one file per run, as one file per task
            local_s = time.perf_counter() - started
        finally:
            store.close()
        result["overhead"] = {
            "tasks": job.tasks_total,
            "queued_s": queued_s,
            "in_process_s": local_s,
            "per_task_ms": 1000 * (queued_s - local_s) / job.tasks_total,
            "unchanged": job.counts["unchanged"],
        }
        # question embedding latency
        questions = [f"What did the report say about item {i} and its harbor?" for i in range(60)]
        timings: dict[str, list[float]] = {"in-process": [], "server": []}
        for name, fn in (("in-process", local.embed_queries), ("server", server.embed_queries)):
            fn(questions[:2])
            for q in questions:
                t0 = time.perf_counter()
                fn([q])
                timings[name].append(1000 * (time.perf_counter() - t0))
        result["query_embedding_ms"] = {
            k: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for k, v in timings.items()
        }
        server.close()
    finally:
        redis_server.stop()
        if server_pid:
            try:
                os.killpg(server_pid, 15)
            except ProcessLookupError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench queue")
    parser.add_argument("--corpus", choices=["squad", "mixed"], default="squad")
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    parser.add_argument(
        "--embedding-url", default=None, help="a running embedding server (default: start one here)"
    )
    args = parser.parse_args(argv)
    r = run(args.corpus, args.limit, args.embedding_url)
    print(
        f"{r['corpus']}: {r['files']} files, {r['passages']} passages, {r['tokens']:,} Llama "
        f"tokens; embedding server {r['embedding_url']}\n"
    )
    rows = [
        [
            "embedding server, bare (the ceiling)",
            "-",
            r["server_bare_s"],
            r["server_bare_tokens_per_s"],
            1.0,
            "-",
        ]
    ]
    rows += [
        [
            f"queue: worker process, {x['workers']} task(s) at once",
            x["workers"],
            x["seconds"],
            x["tokens_per_s"],
            x["of_server"],
            f"{x['done']} / {x['failed']}",
        ]
        for x in r["runs"]
    ]
    print(
        table(["path", "consumers", "s", "tokens/s", "of the server's bare", "done / failed"], rows)
    )
    o = r["overhead"]
    print(
        f"\nqueue overhead: {o['tasks']} tasks (one unchanged file each) in "
        f"{o['queued_s']:.2f} s through the queue vs {o['in_process_s']:.2f} s in-process: "
        f"{o['per_task_ms']:.1f} ms per task"
    )
    q = r["query_embedding_ms"]
    print(
        "question embedding, one at a time: "
        + ", ".join(f"{k} p50 {v['p50']:.1f} ms / p95 {v['p95']:.1f} ms" for k, v in q.items())
    )
    write_result("queue", r)
    return r
