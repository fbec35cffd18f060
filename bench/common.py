"""Shared helpers for benchmarks: data paths, result files, tables, percentiles."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED_DIR", ROOT.parent / "shared")) / "data"
SQUAD = SHARED / "squad2-dev"
MIXED = SHARED / "mixed-docs"
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    """``bench/results/<name>.json`` (with the machine), and a line saying so."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str))
    print(f"\nwrote {path}")
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def load_questions(limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SQUAD / "questions.jsonl").read_text().splitlines()]
    return rows[:limit] if limit else rows


def squad_store(tmp: str | Path) -> tuple[Any, Any, Any]:
    """(settings, embedder, store): a fresh embedded store in ``tmp`` holding SQuAD's
    articles, ingested as the service does."""
    settings, embedder, store, worker = fresh_worker(tmp, warm=False)
    summary = worker.run([SQUAD / "articles"])
    print(
        f"ingested {summary.ingested} articles: {summary.parents} parents, "
        f"{summary.passages} passages in {summary.seconds:.1f} s"
    )
    return settings, embedder, store


def fresh_worker(tmp: str | Path, warm: bool = True) -> tuple[Any, Any, Any, Any]:
    """(settings, embedder, store, worker) over a fresh embedded store in ``tmp``; ``warm``
    runs the embedder once first, so that one-time start-up is not counted as embedding."""
    from ingest.indexer import Indexer
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore

    settings = Settings(data_dir=Path(tmp))
    embedder = SentenceTransformerEmbedder(settings)
    if warm:
        embedder.embed_passages(["warm up"] * 4)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    return settings, embedder, store, Indexer(settings, embedder, store)
