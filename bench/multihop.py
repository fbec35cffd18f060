"""Multi-hop retrieval on HotpotQA-dev: both gold paragraphs in the top k, per method.

One embedded store holds HotpotQA-dev paragraphs (one Markdown file each): all of them, or,
with ``--questions N``, the gold files of N questions spread over the set plus
``--distractors`` other files (quick runs). For each question: is each gold file among the
top 2/5/10 parents, for hybrid (today's default), dense alone, sparse alone (our BM25
vectors in Qdrant), BM25 (bm25s over the same files) and hybrid + the follow-up hop
(``rag.answer.hops``), all in the same run; ms per query is the whole retrieval (query
embedding included; bm25s: tokenising and scoring).

With ``--llm URL`` (an OpenAI-compatible server, e.g. the local vLLM), one more row: the
follow-ups the LLM proposes (``rag.answer.decompose``, the answer path with
``RAG_HOP_DECOMPOSE``), falling back to the deterministic ones, with the share of usable
proposals; its ms include the proposal.

Usage: python -m bench multihop [--questions N] [--distractors N] [--hop-queries N]
       [--hop-budget-ms MS] [--work-dir DIR] [--llm URL --llm-model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from bench.common import SHARED, percentile, table, write_result

HOTPOT = SHARED / "hotpotqa-dev"
KS = [2, 5, 10]


def select(n: int | None, distractors: int | None, folder: Path) -> list[dict[str, Any]]:
    """The questions (N spread over the set, or all) and the files copied to ``folder``:
    all of them, or the questions' gold files and ``distractors`` others."""
    rows = [json.loads(line) for line in (HOTPOT / "questions.jsonl").read_text().splitlines()]
    docs = sorted(p.name for p in (HOTPOT / "docs").glob("*.md"))
    if n:
        step = max(1, len(rows) // n)
        rows = rows[::step][:n]
    if distractors is not None:
        gold = {f for r in rows for f in r["gold_files"]}
        others = [d for d in docs if d not in gold]
        step = max(1, len(others) // max(1, distractors))
        files = sorted(gold | set(others[::step][:distractors]))
    else:
        files = docs
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(HOTPOT / "docs" / name, folder / name)
    return rows


def both(found: list[str], gold: list[str], k: int) -> bool:
    top = set(found[:k])
    return all(g in top for g in gold)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench multihop")
    parser.add_argument("--questions", type=int, default=None, help="N questions (spread)")
    parser.add_argument(
        "--distractors",
        type=int,
        default=None,
        help="only the questions' gold files and N others (default: every file)",
    )
    parser.add_argument("--work-dir", default=None, help="keep the store here (a rerun reuses it)")
    parser.add_argument("--top-k", type=int, default=10, help="parents retrieved")
    parser.add_argument("--hop-queries", type=int, default=None, help="follow-ups at most")
    parser.add_argument("--hop-budget-ms", type=int, default=None)
    parser.add_argument("--llm", default=None, help="OpenAI-compatible base URL: a row for it")
    parser.add_argument("--llm-model", default="smollm2-135m-instruct")
    parser.add_argument(
        "--llm-timeout",
        type=float,
        default=None,
        help="s per proposal (RAG_HOP_DECOMPOSE_TIMEOUT_S)",
    )
    args = parser.parse_args(argv)

    import bm25s
    import Stemmer

    from bench.common import fresh_worker
    from rag.answer.decompose import HopDecomposer
    from rag.answer.llm import LLMClient, LLMConfig
    from rag.answer.retrieval import Retriever
    from rag.settings import RetrievalMode

    latencies: dict[str, list[float]] = {}
    found: dict[str, list[list[str]]] = {}
    hop_found = 0
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.work_dir or scratch
        folder = Path(tmp) / "docs"
        questions = select(args.questions, args.distractors, folder)
        settings, embedder, store, worker = fresh_worker(Path(tmp) / "data")
        summary = worker.run([folder])
        print(
            f"ingested {summary.ingested} files: {summary.parents} parents, "
            f"{summary.passages} passages in {summary.seconds:.1f} s"
        )
        hop_settings = settings.retrieval.model_copy(update={"retrieval_hops": 2})
        if args.hop_queries is not None:
            hop_settings = hop_settings.model_copy(update={"hop_queries": args.hop_queries})
        if args.hop_budget_ms is not None:
            hop_settings = hop_settings.model_copy(update={"hop_budget_ms": args.hop_budget_ms})
        plain = Retriever(
            settings.retrieval.model_copy(update={"retrieval_hops": 1}), embedder, store
        )
        hopping = Retriever(hop_settings, embedder, store)

        files = sorted(p for p in folder.glob("*.md"))
        texts = [f.read_text() for f in files]
        stemmer = Stemmer.Stemmer("english")
        bm25 = bm25s.BM25()
        bm25.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
            show_progress=False,
        )
        plain.retrieve("warm up", 2, RetrievalMode.hybrid, None)

        systems = {
            "hybrid (today)": (plain, RetrievalMode.hybrid),
            "dense": (plain, RetrievalMode.dense),
            "sparse (our BM25 vectors)": (plain, RetrievalMode.sparse),
            "hybrid + hop": (hopping, RetrievalMode.hybrid),
        }
        loop = asyncio.new_event_loop()
        decomposer = None
        if args.llm:
            llm_settings = settings.model_copy(
                update={"llm_base_url": args.llm, "llm_model": args.llm_model}
            )
            decomposing = {"hop_decompose": True}
            if args.llm_timeout is not None:
                decomposing["hop_decompose_timeout_s"] = args.llm_timeout
            decomposer = HopDecomposer(
                hop_settings.model_copy(update=decomposing),
                LLMClient(LLMConfig.from_settings(llm_settings)),
            )
        proposals: dict[str, int] = {}
        for i, q in enumerate(questions):
            if decomposer is not None:
                name = f"hybrid + LLM-proposed hop ({args.llm_model})"
                t0 = time.perf_counter()
                first = hopping.first_hop(q["question"], args.top_k, RetrievalMode.hybrid, None)
                plan = loop.run_until_complete(decomposer.plan(q["question"], first.hits))
                hits = hopping.follow(
                    first,
                    q["question"],
                    args.top_k,
                    RetrievalMode.hybrid,
                    None,
                    plan.follow_ups,
                    proposed=True,  # as the answer path: the budget counts from the proposal
                )
                latencies.setdefault(name, []).append(time.perf_counter() - t0)
                found.setdefault(name, []).append([PurePosixPath(h.source).name for h in hits])
                key = "usable" if plan.source == "llm" else str(plan.note)
                proposals[key] = proposals.get(key, 0) + 1
            for name, (retriever, mode) in systems.items():
                t0 = time.perf_counter()
                hits = retriever.retrieve(q["question"], args.top_k, mode, None)
                latencies.setdefault(name, []).append(time.perf_counter() - t0)
                found.setdefault(name, []).append([PurePosixPath(h.source).name for h in hits])
                if name == "hybrid + hop":
                    hop_found += sum(
                        h.hop == 2 and PurePosixPath(h.source).name in q["gold_files"] for h in hits
                    )
            t0 = time.perf_counter()
            tokens = bm25s.tokenize(
                [q["question"]], stopwords="en", stemmer=stemmer, show_progress=False
            )
            docs, _ = bm25.retrieve(tokens, k=min(args.top_k, len(files)), show_progress=False)
            latencies.setdefault("BM25 (bm25s)", []).append(time.perf_counter() - t0)
            found.setdefault("BM25 (bm25s)", []).append([files[int(d)].name for d in docs[0]])
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(questions)} questions")
        if decomposer is not None and decomposer.llm is not None:
            loop.run_until_complete(decomposer.llm.close())
        loop.close()
        store.close()

    order = ["hybrid (today)", "dense", "sparse (our BM25 vectors)", "BM25 (bm25s)", "hybrid + hop"]
    order += [n for n in found if n not in order]
    recall = {
        name: {
            f"@{k}": sum(both(f, q["gold_files"], k) for f, q in zip(found[name], questions))
            / len(questions)
            for k in KS
        }
        for name in order
    }
    ms = {
        name: {
            "p50": percentile(latencies[name], 50) * 1000,
            "p95": percentile(latencies[name], 95) * 1000,
        }
        for name in order
    }
    rows = [
        [name] + [recall[name][f"@{k}"] for k in KS] + [ms[name]["p50"], ms[name]["p95"]]
        for name in order
    ]
    print(
        f"\nBoth gold paragraphs in the top k, {len(questions)} questions, "
        f"{len(files)} paragraphs (hops: {hop_settings.hop_queries} follow-ups, "
        f"budget {hop_settings.hop_budget_ms} ms; {hop_found} gold paragraphs found by a "
        "follow-up):\n"
    )
    print(
        table(["method"] + [f"both gold @{k}" for k in KS] + ["ms/query p50", "ms/query p95"], rows)
    )
    if proposals:
        print(f"\nLLM proposals ({args.llm_model}): {proposals}")
    result = {
        "questions": len(questions),
        "llm_proposals": proposals,
        "paragraphs": len(files),
        "hop_queries": hop_settings.hop_queries,
        "hop_budget_ms": hop_settings.hop_budget_ms,
        "gold_found_by_follow_up": hop_found,
        "both_gold": recall,
        "ms_per_query": ms,
    }
    write_result("multihop", result)
    return result


if __name__ == "__main__":
    main()
