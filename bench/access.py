"""What the access filter costs a search, and proof that it never shrinks ``top_k``.

The store is grown from the real SQuAD-dev passages as in ``bench.latency`` (copies of the
stored points under new document ids), and its documents are spread over G groups round-robin
(``acl = ["group:g<i>"]``, collection ``default``, on every passage, parent and record; one
``set_payload`` per group and batch of document ids, so a million passages take seconds). The
same SQuAD-dev questions are then searched as four principals: an admin (no filter), a reader
in 1 group, in 10 groups and in all G groups, through ``RagPipeline.search`` with each one's
``ReadScope`` (the filter inside the Qdrant query), interleaved query by query so all four see
the same noise; then over HTTP (``/v1/search``, one client, the real ``python -m api`` with a
named key per principal in ``RAG_API_KEYS_FILE``), unless ``--no-http``; then each
principal's questions again from ``--clients`` concurrent clients (default 8; 0: skip), and
the API's resident memory after the runs.

Reported per principal: readable parents (what a search returns), p50/p95/p99 ms, p95 relative
to the admin's (goal <= 1.2), and *short* results: searches that returned fewer than top_k
parents although at least top_k are readable (must be 0).

Usage: python -m bench access [--sizes 50000,1000000] [--requests 100] [--groups 100]
       [--top-k 16] [--no-http] [--clients 8] [--optimize] [--work-dir DIR]

``--work-dir`` keeps the grown store there; a rerun asking for the size it holds (one
``--sizes`` value, the same ``--groups``, indexed if ``--optimize``) measures it again without
growing, grouping or indexing it anew; any other run grows it on.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import SQUAD, load_questions, table, write_result
from bench.latency import api_process, grow, http_load, rss_mb, stats

_BATCH = 256
GOAL_RATIO = 1.2


@dataclass
class Reader:
    """One principal of the benchmark, its API key, and what it measured at one size."""

    label: str
    name: str
    role: str
    groups: list[str]
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    readable: int = 0  # parents its scope may read
    readable_passages: int = 0
    library: list[float] = field(default_factory=list)
    http: list[float] = field(default_factory=list)
    http_many: list[float] = field(default_factory=list)  # with --clients concurrent clients
    short_library: int = 0
    short_http: int = 0

    def principal(self) -> Any:
        from rag.access import Principal, Role

        return Principal(self.name, Role.parse(self.role), frozenset(self.groups))

    def scope(self) -> Any:
        from rag.access import ReadScope

        return ReadScope.of(self.principal(), default_is_everyone=False)

    def reset(self) -> None:
        self.library, self.http, self.http_many = [], [], []
        self.short_library = self.short_http = 0


def readers(groups: int) -> list[Reader]:
    ten = min(10, groups)
    return [
        Reader("admin (unfiltered)", "bench-admin", "admin", []),
        Reader("1 group", "bench-one", "reader", ["g0"]),
        Reader(f"{ten} groups", "bench-ten", "reader", [f"g{i}" for i in range(ten)]),
        Reader(f"all {groups} groups", "bench-all", "reader", [f"g{i}" for i in range(groups)]),
    ]


def assign_groups(store: Any, groups: int, assigned: dict[str, int]) -> int:
    """Give every document not yet in ``assigned`` the next of ``groups`` groups, round-robin,
    on its passages, parents and record (batched by group); returns how many were new."""
    from qdrant_client import models as qm

    from rag.access import AccessList

    by_group: dict[int, list[str]] = {}
    for record in store.documents.list_documents():
        if record.document_id not in assigned:
            group = assigned[record.document_id] = len(assigned) % groups
            by_group.setdefault(group, []).append(record.document_id)
    names = store.names
    for group, docs in by_group.items():
        payload = AccessList.of("default", [f"g{group}"]).to_payload()
        for i in range(0, len(docs), _BATCH):
            batch = docs[i : i + _BATCH]
            by_doc = qm.FilterSelector(
                filter=qm.Filter(
                    must=[qm.FieldCondition(key="document_id", match=qm.MatchAny(any=batch))]
                )
            )
            store.client.set_payload(names.passages, payload, points=by_doc, wait=True)
            store.client.set_payload(names.parents, payload, points=by_doc, wait=True)
            store.client.set_payload(
                names.documents, payload, points=qm.PointIdsList(points=list(batch)), wait=True
            )
    return sum(len(d) for d in by_group.values())


def count_readable(store: Any, people: list[Reader]) -> None:
    for r in people:
        flt = r.scope().to_qdrant()
        r.readable = store.client.count(store.names.parents, count_filter=flt, exact=True).count
        r.readable_passages = store.client.count(
            store.names.passages, count_filter=flt, exact=True
        ).count


def time_library(pipeline: Any, queries: list[str], people: list[Reader], top_k: int) -> None:
    """Each query as every principal in turn (the same moment's noise for all four)."""
    scopes = [r.scope() for r in people]
    for q in queries[:2]:  # warm-up: model, caches; not counted
        for scope in scopes:
            pipeline.search(q, top_k, scope=scope)
    for q in queries:
        for r, scope in zip(people, scopes):
            t0 = time.perf_counter()
            hits = pipeline.search(q, top_k, scope=scope)
            r.library.append(time.perf_counter() - t0)
            if len(hits) < top_k <= r.readable:
                r.short_library += 1


@contextmanager
def keys_file(folder: Path, people: list[Reader]) -> Iterator[Path]:
    """A ``RAG_API_KEYS_FILE`` naming every principal (hashes only), set for the API the
    context starts (``api_process`` passes this process's environment on)."""
    path = folder / "keys.toml"
    lines = []
    for r in people:
        digest = hashlib.sha256(r.key.encode()).hexdigest()
        groups = ", ".join(f'"{g}"' for g in r.groups)
        lines += [
            "[[keys]]",
            f'name = "{r.name}"',
            f'role = "{r.role}"',
            f"groups = [{groups}]",
            f'sha256 = "{digest}"',
            "",
        ]
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    saved = {k: os.environ.get(k) for k in ("RAG_API_KEYS_FILE", "RAG_API_KEYS")}
    os.environ["RAG_API_KEYS_FILE"] = str(path)
    os.environ.pop("RAG_API_KEYS", None)
    try:
        yield path
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def time_http(url: str, queries: list[str], people: list[Reader], top_k: int) -> None:
    """One client, each query as every principal in turn."""
    with httpx.Client(timeout=300) as http:

        def search(r: Reader, q: str) -> int:
            response = http.post(
                f"{url}/v1/search",
                json={"query": q, "top_k": top_k},
                headers={"Authorization": f"Bearer {r.key}"},
            )
            response.raise_for_status()
            return len(response.json()["results"])

        for q in queries[:2]:
            for r in people:
                search(r, q)
        for q in queries:
            for r in people:
                t0 = time.perf_counter()
                found = search(r, q)
                r.http.append(time.perf_counter() - t0)
                if found < top_k <= r.readable:
                    r.short_http += 1


def time_http_clients(
    url: str, queries: list[str], people: list[Reader], top_k: int, clients: int
) -> None:
    """Each principal's questions from ``clients`` concurrent clients, one principal at a
    time (its key on every request)."""
    for r in people:
        headers = {"Authorization": f"Bearer {r.key}"}
        r.http_many = asyncio.run(http_load(url, queries, clients, headers=headers, top_k=top_k))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench access")
    parser.add_argument("--sizes", default="50000,1000000")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=16)
    parser.add_argument("--no-http", action="store_true", help="library searches only")
    parser.add_argument(
        "--clients", type=int, default=8, help="concurrent clients of the second HTTP pass"
    )
    parser.add_argument("--work-dir", default=None, help="keep the store here (a rerun reuses it)")
    parser.add_argument(
        "--optimize", action="store_true", help="build Edge's HNSW index before measuring"
    )
    args = parser.parse_args(argv)
    if args.groups < 1 or args.top_k < 1 or args.clients < 0:
        parser.error("--groups and --top-k must be at least 1, --clients at least 0")

    from ingest.indexer import Indexer
    from rag.answer.pipeline import RagPipeline
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore

    sizes = [int(s) for s in args.sizes.split(",")]
    queries = [q["question"] for q in load_questions(args.requests)]
    top_k, http_on = args.top_k, not args.no_http
    people = readers(args.groups)
    rows: list[list[Any]] = []
    result: dict[str, Any] = {
        "groups": args.groups,
        "top_k": top_k,
        "requests": len(queries),
        "goal_p95_ratio": GOAL_RATIO,
        "sizes": {},
    }
    assigned: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.work_dir or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        marker = tmp / "access-store.json"
        built = json.loads(marker.read_text()) if marker.exists() else None
        llm = "http://127.0.0.1:9/v1"
        settings = Settings(data_dir=tmp / "edge", llm_base_url=llm)
        embedder = SentenceTransformerEmbedder(settings)
        store = QdrantStore(settings, embedder.name, embedder.dimension)
        if built is None:
            Indexer(settings, embedder, store).run([SQUAD / "articles"])
        for size in sizes:
            grow_s = assign_s = optimize_s = None
            reused = (
                built is not None
                and built["size"] == size
                and built["groups"] == args.groups
                and built["optimized"] >= args.optimize
                and store.documents.count_passages() == built["passages"]
            )
            if reused:
                assert built is not None
                actual = built["passages"]
                print(f"{actual:,} passages: the store kept in {tmp}, measured again", flush=True)
            else:
                started = time.perf_counter()
                actual = grow(store, size)
                grow_s = time.perf_counter() - started
                started = time.perf_counter()
                new = assign_groups(store, args.groups, assigned)
                assign_s = time.perf_counter() - started
                if args.optimize:
                    started = time.perf_counter()
                    store.optimize()
                    optimize_s = time.perf_counter() - started
                built = {
                    "size": size,
                    "passages": actual,
                    "documents": len(assigned),
                    "groups": args.groups,
                    "optimized": args.optimize,
                }
                marker.write_text(json.dumps(built))
                print(
                    f"{actual:,} passages, {len(assigned):,} documents over {args.groups} "
                    f"groups: grown in {grow_s:.0f} s, acl set on {new:,} new documents in "
                    f"{assign_s:.1f} s"
                    + (f", HNSW built in {optimize_s:.0f} s" if optimize_s is not None else ""),
                    flush=True,
                )
            count_readable(store, people)
            for r in people:
                r.reset()
            time_library(RagPipeline(settings, embedder, store, None), queries, people, top_k)
            api_start_s, api_rss = None, {}
            if http_on:
                store.close()  # one process per embedded store: hand it to the API
                started = time.perf_counter()
                pids: list[int] = []
                with (
                    keys_file(tmp, people),
                    api_process(settings.data_dir, llm, pids) as url,
                ):
                    api_start_s = time.perf_counter() - started
                    time_http(url, queries, people, top_k)
                    if args.clients:
                        time_http_clients(url, queries, people, top_k, args.clients)
                    api_rss = rss_mb(pids[0])
                store = QdrantStore(settings, embedder.name, embedder.dimension)
            base_lib, base_http = stats(people[0].library), stats(people[0].http)
            per: dict[str, Any] = {}
            for r in people:
                lib = stats(r.library)
                lib_ratio = lib[1] / base_lib[1]
                row: list[Any] = [actual, r.label, r.readable, *lib, lib_ratio]
                entry: dict[str, Any] = {
                    "groups": len(r.groups),
                    "readable_parents": r.readable,
                    "readable_passages": r.readable_passages,
                    "library_ms": lib,
                    "library_p95_ratio": lib_ratio,
                    "short_library": r.short_library,
                }
                if http_on:
                    web = stats(r.http)
                    web_ratio = web[1] / base_http[1]
                    row += [*web, web_ratio]
                    entry |= {
                        "http_1_client_ms": web,
                        "http_p95_ratio": web_ratio,
                        "short_http": r.short_http,
                    }
                    if args.clients:
                        many = stats(r.http_many)
                        row += many
                        entry[f"http_{args.clients}_clients_ms"] = many
                short = r.short_library + r.short_http
                row.append(short)
                entry["short"] = short
                rows.append(row)
                per[r.label] = entry
            result["sizes"][actual] = {
                "documents": built["documents"],
                "store": built,
                "grow_s": grow_s,
                "assign_s": assign_s,
                "optimize_s": optimize_s,
                "api_start_s": api_start_s,
                "api_rss_mb": api_rss,
                "reused_store": grow_s is None,
                "principals": per,
            }
        store.close()
    headers = ["passages", "principal", "readable parents", "lib p50", "p95", "p99", "p95 ratio"]
    if http_on:
        headers += ["HTTP p50", "p95", "p99", "p95 ratio"]
        if args.clients:
            headers += [f"{args.clients} clients p50", "p95", "p99"]
    headers.append(f"short (< {top_k} while >= {top_k} readable)")
    print(
        f"\nSearch latency by principal (ms; top_k {top_k}, {len(queries)} queries, documents "
        f"round-robin over {args.groups} groups; p95 ratio = / admin's, goal <= {GOAL_RATIO}; "
        "short must be 0):\n"
    )
    text = table(headers, rows)
    print(text)
    for size, entry in result["sizes"].items():
        if entry["api_rss_mb"]:
            rss = entry["api_rss_mb"]
            print(
                f"API at {size:,} passages: {rss['VmRSS']:,.0f} MB resident, peak {rss['VmHWM']:,.0f}"
            )
    result["table"] = text
    result["rows"] = rows
    result["worst_p95_ratio"] = max(
        max(e["library_p95_ratio"], e.get("http_p95_ratio", 0.0))
        for s in result["sizes"].values()
        for e in s["principals"].values()
    )
    result["short"] = sum(
        e["short"] for s in result["sizes"].values() for e in s["principals"].values()
    )
    write_result("access", result)
    return result
