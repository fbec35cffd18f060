"""Query latency over HTTP at several store sizes, and the API's overhead over the library.

The store is grown from the real SQuAD-dev passages: after one real ingest, copies of the
stored points (same vectors, new document ids) are added until the passage count reaches
each size, since search cost depends on the number and shape of vectors, not on their text.
For each size: the same searches through ``RagPipeline.search`` in this process (every
retrieval mode), then ``/v1/search`` over HTTP against the real API (``python -m api``, its
own process, as deployed) with 1 and 8 concurrent clients; overhead = HTTP p50 - library
p50 of the default mode. With --llm URL, also /v1/query time to first token and total, split
into retrieval, packing and generation, at the largest size. With ``--engines edge,python``
the pure-Python embedded engine is measured too (library only, fewer queries: it is slow).
The noisy-neighbour row (``bench.noisy``): the 1-client searches again while another client
sends the heaviest history query the door admits in a loop (goal: p95 within 1.5x).

Usage: python -m bench latency [--sizes 1000,10000,50000] [--requests 100] [--llm URL]
       [--noisy-turns N] [--noisy-chars N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bench.common import SQUAD, load_questions, percentile, table, write_result
from bench.noisy import maximal_query, while_heavy
from bench.services import free_port
from rag.store.documents import EVERYTHING


def grow(store: Any, target: int, seed: int = 0) -> int:
    """Copy stored passages (and their parents) under new document ids up to ``target``.
    Copies get their dense vector moved by a little noise (cosine ~0.99 to the original), so
    a large store holds distinct vectors, as real corpora do, not a million duplicates; each
    copied document gets its record, so it is a committed version like an ingested one."""
    import numpy as np
    from qdrant_client import models as qm

    rng = np.random.default_rng(seed)

    passages = list(store.documents.iter_passages())
    by_parent = {p.id: p.payload for p in store.documents.iter_parents()}
    by_document = {r.document_id: r for r in store.documents.list_documents()}
    count = store.documents.count_passages()
    copy = 0
    while count < target:
        copy += 1
        doc_map: dict[str, str] = {}
        parent_map: dict[str, str] = {}
        new_parents, new_points = [], []
        for p in passages:
            if count + len(new_points) >= target:
                break
            pid = p.payload.parent_id
            if pid not in parent_map:
                parent_map[pid] = str(uuid.uuid4())
                doc = doc_map.setdefault(p.payload.document_id, str(uuid.uuid4()))
                src = by_parent[pid]
                copied = replace(src, document_id=doc, source=f"{src.source}#copy{copy}")
                new_parents.append(
                    qm.PointStruct(id=parent_map[pid], vector={}, payload=copied.to_payload())
                )
            payload = replace(
                p.payload, parent_id=parent_map[pid], document_id=doc_map[p.payload.document_id]
            )
            dense = np.asarray(p.dense, dtype=np.float32)
            dense = dense + rng.normal(0, 0.1 / np.sqrt(dense.size), dense.size)
            vector = {
                "dense": (dense / np.linalg.norm(dense)).tolist(),
                "bm25": qm.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
            }
            new_points.append(
                qm.PointStruct(id=str(uuid.uuid4()), vector=vector, payload=payload.to_payload())
            )
        # Each copy is a committed document (its record names its content hash), as after a
        # real ingest; without records every copy would be an uncommitted version, hidden
        # from search, and the search would widen its window looking for committed ones.
        new_records = [
            qm.PointStruct(
                id=new,
                vector={},
                payload=replace(
                    by_document[old],
                    document_id=new,
                    source=f"{by_document[old].source}#copy{copy}",
                ).to_payload(),
            )
            for old, new in doc_map.items()
            if old in by_document
        ]
        for i in range(0, len(new_records), 256):
            store.client.upsert(store.names.documents, new_records[i : i + 256])
        for i in range(0, len(new_parents), 256):
            store.client.upsert(store.names.parents, new_parents[i : i + 256])
        for i in range(0, len(new_points), 512):
            store.client.upsert(store.names.passages, new_points[i : i + 512])
        count += len(new_points)
    return store.documents.count_passages()


async def http_load(
    url: str,
    queries: list[str],
    clients: int,
    headers: dict[str, str] | None = None,
    top_k: int = 16,
) -> list[float]:
    """``/v1/search`` latencies of ``queries`` sent by ``clients`` concurrent clients."""
    latencies: list[float] = []
    queue = list(queries)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=300) as http:
            while queue:
                q = queue.pop()
                t0 = time.perf_counter()
                r = await http.post(
                    f"{url}/v1/search", json={"query": q, "top_k": top_k}, headers=headers
                )
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def stats(values: list[float]) -> list[float]:
    return [percentile(values, p) * 1000 for p in (50, 95, 99)]


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of a process, MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


@contextmanager
def api_process(
    data_dir: Path, llm: str, pids: list[int] | None = None, tokenizer: str = "server"
) -> Iterator[str]:
    """``python -m api`` on the benchmark's store, as an operator would run it. Its log goes
    to a file, not a pipe: a pipe nobody reads fills after a few hundred requests' access
    lines and then blocks the API in the middle of a measurement."""
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "RAG_API_PORT": str(port),
        "RAG_API_HOST": "127.0.0.1",
        "RAG_LLM_BASE_URL": llm,
        "RAG_LLM_TOKENIZER": tokenizer,
        "RAG_TARGET_FILL_TOKENS": "1500",
        "RAG_LOG_JSON": "false",
    }
    env.pop("RAG_CONFIG_FILE", None)
    env.pop("RAG_QDRANT_URL", None)
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api"], env=env, stdout=subprocess.DEVNULL, stderr=log, text=True
    )
    if pids is not None:
        pids.append(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900  # a million points take a while to open
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the API exited: {log.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start in 900 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def time_modes(pipeline: Any, queries: list[str]) -> dict[str, list[float]]:
    from rag.settings import RetrievalMode

    per_mode: dict[str, list[float]] = {}
    for mode in RetrievalMode:
        for q in queries:
            t0 = time.perf_counter()
            pipeline.search(q, 16, mode=mode, scope=EVERYTHING)
            per_mode.setdefault(mode.value, []).append(time.perf_counter() - t0)
    return per_mode


def traced_vs_off(pipeline: Any, queries: list[str]) -> dict[str, Any]:
    """Library search (default mode, top_k 16) with tracing off and on, alternating query by
    query (the same noise for both); on: every span exported over OTLP/HTTP, batched, to a
    local sink that accepts everything (the real exporter path, no collector needed)."""
    import http.server
    import threading

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rag import tracing

    posts = [0]

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            posts[0] += 1
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    off: list[float] = []
    on: list[float] = []
    try:
        for q in queries:
            for times, chosen in ((off, None), (on, provider)):
                tracing.use(chosen)
                t0 = time.perf_counter()
                pipeline.search(q, 16, scope=EVERYTHING)
                times.append(time.perf_counter() - t0)
    finally:
        tracing.use(None)
        provider.shutdown()
        server.shutdown()
    return {"off": off, "on": on, "exports": posts[0]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench latency")
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--llm", default=None, help="LLM base URL for /v1/query timings")
    parser.add_argument(
        "--engines", default="edge", help="embedded engines to time: edge (default engine), python"
    )
    parser.add_argument(
        "--python-requests",
        type=int,
        default=20,
        help="queries per mode for the pure-Python engine",
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="build Edge's HNSW index after growing (timed) before measuring",
    )
    parser.add_argument(
        "--noisy-turns", type=int, default=None, help="noisy neighbour's turns (the door's limit)"
    )
    parser.add_argument(
        "--noisy-chars", type=int, default=None, help="its characters (the door's limit)"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="also time library search with tracing off and on (first size; spans exported)",
    )
    args = parser.parse_args(argv)

    from ingest.indexer import Indexer
    from rag.answer.pipeline import RagPipeline
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import Settings
    from rag.store.engine import copy_points
    from rag.store.qdrant_store import QdrantStore

    sizes = [int(s) for s in args.sizes.split(",")]
    queries = [q["question"] for q in load_questions(args.requests)]
    llm = args.llm or "http://127.0.0.1:9/v1"
    rows, mode_rows, noisy_rows, result = [], [], [], {"sizes": {}, "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "edge", llm_base_url=llm)
        heavy_body = maximal_query(
            args.noisy_turns or settings.max_history_turns,
            args.noisy_chars or settings.max_history_chars,
        )
        embedder = SentenceTransformerEmbedder(settings)
        store = QdrantStore(settings, embedder.name, embedder.dimension)
        Indexer(settings, embedder, store).run([SQUAD / "articles"])
        # The ingested corpus, copied for the pure-Python engine.
        py = Settings(data_dir=Path(tmp) / "python", embedded_engine="python")
        for size in sizes:
            started = time.perf_counter()
            actual = grow(store, size)
            grow_s = time.perf_counter() - started
            optimize_s = None
            if args.optimize:
                started = time.perf_counter()
                store.optimize()
                optimize_s = time.perf_counter() - started
            print(
                f"{actual:,} passages: grown in {grow_s:.0f} s"
                + (f", HNSW built in {optimize_s:.0f} s" if optimize_s is not None else ""),
                flush=True,
            )
            per_mode = time_modes(RagPipeline(settings, embedder, store, None), queries)
            if args.tracing and size == sizes[0]:
                traced = traced_vs_off(RagPipeline(settings, embedder, store, None), queries)
                off, on = stats(traced["off"]), stats(traced["on"])
                result["tracing"] = {
                    "passages": actual,
                    "off_ms": off,
                    "on_ms": on,
                    "exports": traced["exports"],
                }
                print(
                    f"  tracing off p50/p95/p99 {off[0]:.1f}/{off[1]:.1f}/{off[2]:.1f} ms, on "
                    f"{on[0]:.1f}/{on[1]:.1f}/{on[2]:.1f} ms ({traced['exports']} OTLP exports)",
                    flush=True,
                )
            mode_rows += [
                [actual, f"{settings.embedded_engine} {m}", *stats(v)] for m, v in per_mode.items()
            ]
            if size == sizes[0] and "python" in args.engines:
                seed_store = QdrantStore(py, embedder.name, embedder.dimension)
                names = store.names
                for collection in (names.parents, names.passages, names.documents):
                    copy_points(store.client, collection, seed_store.client)
                seed_store.close()
            store.close()  # one process per embedded store: hand it to the API
            pids: list[int] = []
            started = time.perf_counter()
            # Without an LLM the API counts locally: the heavy query is packed in full.
            tokenizer = "server" if args.llm else "llama3"
            with api_process(settings.data_dir, llm, pids, tokenizer) as url:
                open_s = time.perf_counter() - started
                one = asyncio.run(http_load(url, queries, 1))
                eight = asyncio.run(http_load(url, queries, 8))
                noisy, heavy = asyncio.run(while_heavy(url, heavy_body, http_load(url, queries, 1)))
                memory = rss_mb(pids[0])
                if args.llm and size == sizes[-1]:
                    result["query"] = asyncio.run(query_timings(url, queries[:20]))
            store = QdrantStore(settings, embedder.name, embedder.dimension)
            direct = per_mode[settings.retrieval_mode.value]
            d, o, e = stats(direct), stats(one), stats(eight)
            rows.append([actual, *d, *o, *e, o[0] - d[0]])
            n, h = stats(noisy), heavy.summary()
            ratio = n[1] / o[1]
            noisy_rows.append([actual, o[0], o[1], n[0], n[1], ratio, h["requests"], h["mean_s"]])
            result["sizes"][actual] = {
                "library_ms": d,
                "http_1_client_ms": o,
                "http_8_clients_ms": e,
                "library_by_mode_ms": {m: stats(v) for m, v in per_mode.items()},
                "http_8_clients_rps": len(queries) / max(sum(eight) / 8, 1e-9),
                "noisy_neighbour": {"http_1_client_ms": n, "p95_ratio": ratio, **h},
                "api_rss_mb": memory,
                "api_start_s": open_s,
                "grow_s": grow_s,
                "optimize_s": optimize_s,
            }
            print(
                f"  API process: {memory.get('VmRSS', 0):,.0f} MB resident "
                f"(peak {memory.get('VmHWM', 0):,.0f} MB), ready in {open_s:.0f} s",
                flush=True,
            )
        store.close()
        if "python" in args.engines:
            py_store = QdrantStore(py, embedder.name, embedder.dimension)
            few = queries[: args.python_requests]
            for size in sizes:
                actual = grow(py_store, size)
                per_mode = time_modes(RagPipeline(py, embedder, py_store, None), few)
                mode_rows += [[actual, f"python {m}", *stats(v)] for m, v in per_mode.items()]
                result["engines"].setdefault("python", {})[actual] = {
                    m: stats(v) for m, v in per_mode.items()
                }
            py_store.close()
    print(
        table(
            [
                "passages",
                "lib p50",
                "lib p95",
                "lib p99",
                "HTTP 1c p50",
                "p95",
                "p99",
                "HTTP 8c p50",
                "p95",
                "p99",
                "API overhead p50 (ms)",
            ],
            rows,
        )
    )
    print("\nLibrary search latency by engine and mode (query embedding + Qdrant, ms):\n")
    print(
        table(
            ["passages", "engine mode", "p50", "p95", "p99"], sorted(mode_rows, key=lambda r: r[0])
        )
    )
    turns = len(heavy_body["history"]) // 2
    chars = sum(len(m["content"]) for m in heavy_body["history"])
    print(
        f"\nNoisy neighbour: /v1/search (1 client, ms) while another client sends a "
        f"{turns}-turn, {chars:,}-character history query in a loop (goal: p95 within 1.5x):\n"
    )
    print(
        table(
            ["passages", "quiet p50", "p95", "noisy p50", "p95", "p95 ratio", "heavy n", "s each"],
            noisy_rows,
        )
    )
    result["noisy_query"] = {"turns": turns, "chars": chars}
    if "query" in result:
        q = result["query"]
        print("\n/v1/query with the local vLLM (s):\n")
        print(table(["stage", "p50", "p95"], [[k, v["p50"], v["p95"]] for k, v in q.items()]))
    write_result("latency", result)
    return result


async def query_timings(url: str, questions: list[str]) -> dict[str, dict[str, float]]:
    import json

    collected: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=300) as http:
        for q in questions:
            t0 = time.perf_counter()
            first = None
            async with http.stream(
                "POST", f"{url}/v1/query", json={"question": q, "stream": True, "max_tokens": 64}
            ) as r:
                event = None
                async for line in r.aiter_lines():
                    if line.startswith("event:"):
                        event = line[7:]
                    elif line.startswith("data:") and event == "delta" and first is None:
                        first = time.perf_counter() - t0
                    elif line.startswith("data:") and event == "final":
                        final = json.loads(line[5:])
            total = time.perf_counter() - t0
            for k, v in {
                "time to first token": first or total,
                "total": total,
                "retrieval": final["timings"]["retrieval"],
                "packing": final["timings"]["packing"],
                "generation": final["timings"]["generation"],
            }.items():
                collected.setdefault(k, []).append(v)
    return {k: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for k, v in collected.items()}
