"""Answer recall on SQuAD-dev: our retrieval modes vs BM25 (bm25s), in one run.

Measures, for every question, whether an answer string (case-insensitive) occurs in
(a) the top-1/3/5 retrieved parents and (b) the packed context at 4K/8K/16K/32K-token fills
(the same greedy, sentence-cut packing the API uses). Baselines over the same corpus:
BM25 over our parents, over our passages, and over 512-token chunks (as in BASELINES.md),
each packed to the same budgets. Optional: the cross-encoder reranker on a subset. The row
"ours hybrid, relevance floor" is what the answer path retrieves: nothing for a question
under the floor (the settings'), so it shows what the floor costs real questions.

Usage: python -m bench retrieval [--limit N] [--rerank-limit N] [--hops]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

from bench.common import SQUAD, load_questions, mean, percentile, squad_store, table, write_result

FILLS = [4096, 8192, 16384, 32768]
#: Hybrid as the answer path sees it: a question under the relevance floor (RAG_MIN_RELEVANCE,
#: rag.answer.retrieval) retrieves nothing, so it counts as a miss at every depth.
FLOOR_ROW = "ours hybrid, relevance floor"
TOPS = [1, 3, 5]


def contains(text: str, answers: list[str]) -> bool:
    low = text.lower()
    return any(a.lower() in low for a in answers)


def pack(texts: list[str], fill: int, counts: list[int]) -> tuple[str, int]:
    """Greedy whole units while they fit, then one sentence-cut remainder (as the API)."""
    from rag.answer.budget import MIN_PARTIAL_TOKENS, cut_to_tokens

    out, used = [], 0
    for text, n in zip(texts, counts):
        if used + n <= fill:
            out.append(text)
            used += n
        elif fill - used >= MIN_PARTIAL_TOKENS:
            cut = cut_to_tokens(text, fill - used)
            if cut:
                out.append(cut)
                used += len(cut) // 4  # only bookkeeping; the budget is reached
                break
    return "\n\n".join(out), used


class Scorer:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[bool]]] = {}
        self.tokens: dict[str, dict[str, list[int]]] = {}

    def add(self, system: str, key: str, hit: bool, tokens: int) -> None:
        self.rows.setdefault(system, {}).setdefault(key, []).append(hit)
        self.tokens.setdefault(system, {}).setdefault(key, []).append(tokens)

    def recall(self, system: str, key: str) -> float:
        values = self.rows.get(system, {}).get(key, [])
        return sum(values) / len(values) if values else float("nan")

    def mean_tokens(self, system: str, key: str) -> float:
        return mean([float(t) for t in self.tokens.get(system, {}).get(key, [])])


def evaluate_ranked(
    scorer: Scorer,
    system: str,
    ranked: list[str],
    counts: list[int],
    answers: list[str],
    hits: list[Any] | None = None,
) -> None:
    """Top-k units as retrieved; packed context with the API's packer when ``hits`` given."""
    from rag.answer.budget import choose_sources
    from rag.text.tokens import count_tokens

    for k in TOPS:
        scorer.add(system, f"@{k}", contains("\n".join(ranked[:k]), answers), sum(counts[:k]))
    for fill in FILLS:
        if hits is not None:
            sources = choose_sources(
                hits, fill, lambda h, t: h.tokens if t is h.text else count_tokens(t)
            )
            text = "\n\n".join(s.text for s in sources)
            used = sum(
                s.hit.tokens if s.text is s.hit.text else count_tokens(s.text) for s in sources
            )
        else:
            text, used = pack(ranked, fill, counts)
        scorer.add(system, f"{fill // 1024}K", contains(text, answers), min(used, fill))


def chunk_512(text: str) -> list[str]:
    """512-token chunks on sentence boundaries (the baseline's SentenceSplitter analogue)."""
    from rag.text.chunking import sentence_spans
    from rag.text.tokens import count_tokens

    chunks, current, used = [], [], 0
    for s, e in sentence_spans(text):
        sentence = text[s:e]
        n = count_tokens(sentence)
        if current and used + n > 512:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(sentence)
        used += n
    if current:
        chunks.append("".join(current))
    return chunks


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args_in = list(argv if argv is not None else sys.argv[1:])
    if args_in[:2] == ["--corpus", "hotpotqa-dev"]:  # the multi-hop set: both gold @k
        from bench import multihop

        return multihop.main(args_in[2:])
    parser = argparse.ArgumentParser(prog="python -m bench retrieval")
    parser.add_argument(
        "--corpus",
        choices=["squad", "hotpotqa-dev"],
        default="squad",
        help="squad (answer recall, this module) or hotpotqa-dev (bench multihop)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N questions")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="N questions spread evenly over the whole set (quick runs)",
    )
    parser.add_argument("--top-k", type=int, default=16, help="parents retrieved")
    parser.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="passages per parent (default: the setting, 16)",
    )
    parser.add_argument(
        "--rerank-limit",
        type=int,
        default=0,
        help="also measure hybrid + cross-encoder rerank on N questions",
    )
    parser.add_argument(
        "--hops",
        action="store_true",
        help="also hybrid + the follow-up hop (rag.answer.hops), whole retrieval timed",
    )
    args = parser.parse_args(argv)

    import bm25s
    import Stemmer

    from rag.answer.retrieval import RelevanceFloor, Retriever
    from rag.embedding.sparse import BM25Encoder
    from rag.settings import RetrievalMode
    from rag.text.tokens import count_tokens

    questions = load_questions(args.limit)
    if args.sample:
        step = max(1, len(questions) // args.sample)
        questions = questions[::step][: args.sample]
    scorer = Scorer()
    latencies: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings, embedder, store = squad_store(tmp)

        # Everything stored, for the BM25 baselines over the very same units.
        parents = {p.id: p.payload for p in store.documents.iter_parents()}
        parent_texts = [p.text for p in parents.values()]
        passage_texts = []
        for p in store.documents.iter_passages():
            parent = parents[p.payload.parent_id]
            s, e = p.payload.start - parent.start, p.payload.end - parent.start
            passage_texts.append(parent.text[s:e])
        articles = [f.read_text() for f in sorted((SQUAD / "articles").glob("*.md"))]
        chunk_texts = [c for a in articles for c in chunk_512(a)]

        stemmer = Stemmer.Stemmer("english")
        baselines = {}
        for name, texts in [
            ("BM25 parents", parent_texts),
            ("BM25 passages", passage_texts),
            ("BM25 512-token chunks", chunk_texts),
        ]:
            retriever = bm25s.BM25()
            retriever.index(
                bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                show_progress=False,
            )
            baselines[name] = (retriever, texts, [count_tokens(t) for t in texts])

        query_vectors = embedder.embed_queries([q["question"] for q in questions])
        sparse = BM25Encoder()
        ours, floor = Retriever(settings.retrieval, embedder, store), RelevanceFloor.of(settings)
        hopper = Retriever(
            settings.retrieval.model_copy(update={"retrieval_hops": 2}), embedder, store
        )
        refused = 0
        parent_counts: dict[str, int] = {}
        for i, q in enumerate(questions):
            for mode in RetrievalMode:
                t0 = time.perf_counter()
                hits = store.search.search(
                    query_vectors[i].tolist() if mode is not RetrievalMode.sparse else None,
                    sparse.encode_query(q["question"]),
                    limit=args.top_k,
                    mode=mode,
                    group_size=args.group_size,
                )
                latencies.setdefault(mode.value, []).append(time.perf_counter() - t0)
                texts = [h.text for h in hits]
                counts = [parent_counts.setdefault(h.parent_id, h.tokens) for h in hits]
                evaluate_ranked(scorer, f"ours {mode.value}", texts, counts, q["answers"], hits)
                if mode is RetrievalMode.hybrid:  # the answer path: nothing under the floor
                    t0 = time.perf_counter()
                    vectors = query_vectors[i].tolist(), sparse.encode_query(q["question"])
                    admitted = floor.admits(ours.relevance(*vectors))
                    latencies.setdefault("relevance floor (extra)", []).append(
                        time.perf_counter() - t0
                    )
                    refused += not admitted
                    kept = hits if admitted else []
                    evaluate_ranked(
                        scorer,
                        FLOOR_ROW,
                        [h.text for h in kept],
                        [parent_counts[h.parent_id] for h in kept],
                        q["answers"],
                        kept,
                    )
            if args.hops:
                t0 = time.perf_counter()
                hits = hopper.retrieve(q["question"], args.top_k, RetrievalMode.hybrid, None)
                latencies.setdefault("hybrid + hop (embedding included)", []).append(
                    time.perf_counter() - t0
                )
                evaluate_ranked(
                    scorer,
                    "ours hybrid + hop",
                    [h.text for h in hits],
                    [parent_counts.setdefault(h.parent_id, h.tokens) for h in hits],
                    q["answers"],
                    hits,
                )
            for name, (retriever, texts, counts) in baselines.items():
                tokens = bm25s.tokenize(
                    [q["question"]], stopwords="en", stemmer=stemmer, show_progress=False
                )
                k = min(len(texts), 80)
                docs, _ = retriever.retrieve(tokens, k=k, show_progress=False)
                order = [int(d) for d in docs[0]]
                evaluate_ranked(
                    scorer,
                    name,
                    [texts[j] for j in order],
                    [counts[j] for j in order],
                    q["answers"],
                )
            if (i + 1) % 1000 == 0:
                print(f"  {i + 1}/{len(questions)} questions")

        rerank_note = None
        if args.rerank_limit:
            # An even spread over all articles (the first N would cover one or two of them).
            step = max(1, len(questions) // args.rerank_limit)
            picked = list(range(0, len(questions), step))[: args.rerank_limit]
            rerank_note = rerank_eval(
                scorer,
                store,
                sparse,
                [questions[i] for i in picked],
                query_vectors[picked],
                settings,
                latencies,
                args.top_k,
            )
        store.close()

    systems = ["ours hybrid", FLOOR_ROW, "ours dense", "ours sparse"]
    if args.hops:
        systems.append("ours hybrid + hop")
    if args.rerank_limit:
        systems += [
            "ours hybrid (rerank subset)",
            "ours hybrid+rerank, reorder only",
            f"ours hybrid+rerank, pool {max(args.top_k, settings.rerank_candidates)}",
        ]
    systems += list(baselines)
    keys = [f"@{k}" for k in TOPS] + [f"{f // 1024}K" for f in FILLS]
    rows = [
        [s] + [f"{scorer.recall(s, k):.3f} ({scorer.mean_tokens(s, k):,.0f})" for k in keys]
        for s in systems
    ]
    print(f"\nAnswer recall over {len(questions)} questions (mean Llama tokens in context):\n")
    print(
        f"(relevance floor {floor.cosine:g}, {floor.cosine_without_terms:g} for a question "
        f"sharing no term: {refused} of {len(questions)} questions refused)\n"
    )
    print(
        table(["system"] + [f"top{k}" if k.startswith("@") else f"packed {k}" for k in keys], rows)
    )
    lat_rows = [
        [m, len(v), percentile(v, 50) * 1000, percentile(v, 95) * 1000]
        for m, v in latencies.items()
    ]
    print("\nStore search latency (query vector given; ms):\n")
    print(table(["mode", "n", "p50 ms", "p95 ms"], lat_rows))
    result = {
        "questions": len(questions),
        "engine": settings.embedded_engine,
        "recall": {s: {k: scorer.recall(s, k) for k in keys} for s in systems},
        "mean_tokens": {s: {k: scorer.mean_tokens(s, k) for k in keys} for s in systems},
        "latency_ms": {
            m: {"p50": percentile(v, 50) * 1000, "p95": percentile(v, 95) * 1000}
            for m, v in latencies.items()
        },
        "rerank_questions": args.rerank_limit,
        "rerank_note": rerank_note,
        "relevance_floor": {
            "cosine": floor.cosine,
            "cosine_without_terms": floor.cosine_without_terms,
            "refused": refused / len(questions),
        },
    }
    write_result("retrieval", result)
    return result


def rerank_eval(
    scorer: Scorer, store, sparse, questions, query_vectors, settings, latencies, top_k: int = 16
) -> str:
    """Hybrid with and without the cross-encoder on the same questions, so the rows compare:
    the reranker chooses ``top_k`` of ``settings.rerank_candidates`` parents (the service's
    path), and, for reference, only reorders the same ``top_k`` (what it did before)."""
    from rag.answer.rerank import CrossEncoderReranker

    reranker = CrossEncoderReranker(settings.model_dir, settings.rerank_passages_per_parent)
    pool = max(top_k, settings.rerank_candidates)
    for i, q in enumerate(questions):
        dense, query = query_vectors[i].tolist(), sparse.encode_query(q["question"])
        hits = store.search.search(dense, query, limit=top_k)
        evaluate_ranked(
            scorer,
            "ours hybrid (rerank subset)",
            [h.text for h in hits],
            [h.tokens for h in hits],
            q["answers"],
            hits,
        )
        t0 = time.perf_counter()
        reordered = reranker.rerank(q["question"], hits, keep=top_k)
        latencies.setdefault("rerank reorder 16 (extra)", []).append(time.perf_counter() - t0)
        evaluate_ranked(
            scorer,
            "ours hybrid+rerank, reorder only",
            [h.text for h in reordered],
            [h.tokens for h in reordered],
            q["answers"],
            reordered,
        )
        t0 = time.perf_counter()
        wide = store.search.search(dense, query, limit=pool)
        chosen = reranker.rerank(q["question"], wide, keep=top_k)
        latencies.setdefault(f"search {pool} + rerank to {top_k}", []).append(
            time.perf_counter() - t0
        )
        evaluate_ranked(
            scorer,
            f"ours hybrid+rerank, pool {pool}",
            [h.text for h in chosen],
            [h.tokens for h in chosen],
            q["answers"],
            chosen,
        )
    return (
        f"rerank measured on {len(questions)} questions spread evenly over the set; "
        f"pool {pool} parents, {settings.rerank_passages_per_parent} passages each"
    )


if __name__ == "__main__":
    main()
