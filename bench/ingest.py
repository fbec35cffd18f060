"""Ingestion throughput and its ceiling: end-to-end vs bare embedding of the same passages.

Usage: python -m bench ingest [--corpus squad|mixed|both] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import MIXED, SQUAD, table, write_result


def run_corpus(name: str, folder: Path, limit: int | None) -> dict[str, Any]:
    from ingest.parsing import ParseFailure, content_hash, parse_file, read_checked
    from ingest.walk import iter_files
    from ingest.worker import IngestWorker
    from rag.embedding import SentenceTransformerEmbedder
    from rag.settings import Settings
    from rag.store import QdrantStore

    files = [f for f in iter_files(folder) if isinstance(f, Path)]
    if limit:
        files = files[:limit]
        work = Path(tempfile.mkdtemp()) / name
        work.mkdir(parents=True)
        for f in files:
            (work / f.name).write_bytes(f.read_bytes())
        folder = work
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        embedder = SentenceTransformerEmbedder(settings)
        embedder.embed_passages(["warm up"] * 4)
        store = QdrantStore(settings, embedder.name, embedder.dimension)
        worker = IngestWorker(settings, embedder, store)
        # warm the parser process (spawn + unstructured's imports) so that one-time start-up
        # is not counted as parsing
        for f in files[:1]:
            try:
                data = read_checked(f, worker.limits)
                worker.sandbox.parse(f, data, content_hash(data, "warm"), worker.limits)
            except ParseFailure:
                pass
        summary = worker.run([folder])
        # The ceiling: the same passages through the same embedder, nothing else.
        texts = []
        for f in files:
            try:
                data = read_checked(f, worker.limits)
                doc = parse_file(f, data, content_hash(data, worker.signature), worker.limits)
            except ParseFailure:
                continue
            texts += [p.text for parent in worker.chunker.parents(doc) for p in parent.passages]
        started = time.perf_counter()
        for i in range(0, len(texts), 256):
            embedder.embed_passages(texts[i:i + 256])
        bare = time.perf_counter() - started
        store.close()
    s = summary.as_dict()
    return {"corpus": name, "files": s["files_seen"], "ingested": s["ingested"],
            "failed": len(s["failed"]), "parents": s["parents"], "passages": s["passages"],
            "tokens": s["tokens"], "seconds": s["seconds"], "stages": s["stages"],
            "files_per_s": s["files_seen"] / s["seconds"], "tokens_per_s": s["tokens"] / s["seconds"],
            "bare_embed_seconds": bare, "bare_tokens_per_s": s["tokens"] / bare,
            "ceiling_ratio": bare / s["seconds"],
            "parse_chunk_over_embed": (s["stages"]["parse"] + s["stages"]["chunk"])
            / max(s["stages"]["embed"], 1e-9)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--corpus", choices=["squad", "mixed", "both"], default="both")
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    args = parser.parse_args(argv)
    corpora = {"squad": SQUAD / "articles", "mixed": MIXED}
    chosen = ["squad", "mixed"] if args.corpus == "both" else [args.corpus]
    results = [run_corpus(c, corpora[c], args.limit) for c in chosen]
    print(table(
        ["corpus", "files", "failed", "parents", "passages", "Llama tokens", "s", "files/s",
         "tokens/s", "bare embed tokens/s", "ceiling ratio", "parse+chunk / embed",
         "parse s", "chunk s", "embed s", "store s"],
        [[r["corpus"], r["files"], r["failed"], r["parents"], r["passages"], r["tokens"],
          r["seconds"], r["files_per_s"], r["tokens_per_s"], r["bare_tokens_per_s"],
          r["ceiling_ratio"], r["parse_chunk_over_embed"], r["stages"]["parse"],
          r["stages"]["chunk"], r["stages"]["embed"], r["stages"]["store"]] for r in results]))
    path = write_result("ingest", {"results": results})
    print(f"\nwrote {path}")
    return {"results": results}
