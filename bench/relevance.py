"""The relevance floor (RAG_MIN_RELEVANCE): what it costs real questions, what it refuses.

One store holds SQuAD-dev's articles and HotpotQA-dev documents: the gold files of the
sampled questions, and as many files of other questions as distractors. Every question is
scored as the answer path scores it (``Retriever.relevance``: the dense cosine of the best
passage) and searched as it searches (hybrid, top_k parents). Real questions are those of
the dev sets, spread evenly over them; junk questions are generated deterministically:
gibberish (made-up words), keyboard mash, and off-topic questions about things neither
corpus covers. For each candidate floor the table gives the share of each kind refused and,
for the real ones, the answer recall lost: questions whose answer string was in the
retrieved parents but that the floor refuses.

Usage: python -m bench relevance [--squad N] [--hotpot N] [--junk N] [--floors 0.5,0.55]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    SHARED,
    SQUAD,
    fresh_worker,
    load_questions,
    percentile,
    table,
    write_result,
)
from rag.answer.retrieval import Relevance, RelevanceFloor, Retriever
from rag.settings import RetrievalMode

HOTPOT = SHARED / "hotpotqa-dev"
FLOORS = "0,0.50,0.52,0.54,0.55,0.56,0.58,0.60,0.54:0.60,0.54:0.62,0.54:0.64,0.54:0.66"

OFF_TOPIC = [
    "How do I reset the password of my home wifi router?",
    "What is a good recipe for banana bread?",
    "How do I fix a flat tyre on a mountain bike?",
    "Which phone plan has the cheapest international roaming?",
    "How long should I boil an egg for a runny yolk?",
    "What should I pack for a week of skiing?",
    "How do I remove red wine stains from a carpet?",
    "Can I claim my home office on my tax return?",
    "How often should I water a cactus?",
    "What is the best way to learn to touch type?",
    "How do I unblock a kitchen sink without chemicals?",
    "Why does my laptop fan get so loud in video calls?",
    "How many calories does a 30 minute jog burn?",
    "What time does the supermarket close on Sundays?",
    "How do I train my puppy to stop biting?",
    "Which houseplants are safe for cats?",
    "How can I make my sourdough starter more active?",
    "What is the quickest way to defrost a freezer?",
    "How do I change the oil in a lawnmower?",
    "Should I paint the ceiling or the walls first?",
]
_KEYS = "qwertyuiopasdfghjklzxcvbnm"
_CONSONANTS, _VOWELS = "bcdfghjklmnprstvwxz", "aeiou"


def junk_questions(n: int, seed: int = 22) -> list[tuple[str, str]]:
    """``n`` (kind, question) pairs, the same for the same ``n`` and ``seed``: gibberish
    words, keyboard mash, and the off-topic list cycled."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(
            rng.choice(_CONSONANTS) + (rng.choice(_VOWELS) if rng.random() < 0.6 else "")
            for _ in range(rng.randint(2, 4))
        )

    out: list[tuple[str, str]] = []
    for i in range(n):
        kind = ("gibberish", "mash", "off-topic")[i % 3]
        if kind == "gibberish":
            text = " ".join(word() for _ in range(rng.randint(3, 7))) + "?"
        elif kind == "mash":
            text = " ".join(
                "".join(rng.choice(_KEYS) for _ in range(rng.randint(3, 8)))
                for _ in range(rng.randint(1, 4))
            )
        else:
            text = OFF_TOPIC[(i // 3) % len(OFF_TOPIC)]
        out.append((kind, text))
    return out


def spread(rows: list[Any], n: int) -> list[Any]:
    """``n`` rows spread evenly over ``rows`` (all of them when fewer)."""
    step = max(1, len(rows) // n) if n else 1
    return rows[::step][:n]


def hotpot_sample(n: int, folder: Path) -> list[dict[str, Any]]:
    """``n`` HotpotQA questions spread over the set, their gold files and as many other
    questions' gold files copied into ``folder``."""
    rows = [json.loads(line) for line in (HOTPOT / "questions.jsonl").read_text().splitlines()]
    picked = spread(rows, n)
    chosen = {id(r) for r in picked}
    distractors = [r for r in rows if id(r) not in chosen][: len(picked)]
    folder.mkdir(parents=True, exist_ok=True)
    for row in picked + distractors:
        for name in row["gold_files"]:
            if (HOTPOT / "docs" / name).exists():
                shutil.copy(HOTPOT / "docs" / name, folder / name)
    return [{"question": r["question"], "answers": [r["answer"]]} for r in picked]


@dataclass
class Scored:
    kind: str
    relevance: Relevance
    answered: bool | None  # the answer in the retrieved parents (real questions only)


def score(
    retriever: Retriever, questions: list[tuple[str, str, list[str]]], top_k: int
) -> list[Scored]:
    """Each (kind, question, answers) as the answer path sees it."""
    vectors = retriever.embedder.embed_queries([q for _, q, _ in questions])
    out = []
    for (kind, question, answers), vector in zip(questions, vectors):
        dense, sparse = vector.tolist(), retriever.sparse.encode_query(question)
        answered = None
        if answers:
            hits = retriever.store.search.search(
                dense, sparse, limit=top_k, mode=RetrievalMode.hybrid
            )
            text = "\n".join(h.text for h in hits).lower()
            answered = any(a.lower() in text for a in answers)
        out.append(Scored(kind, retriever.relevance(dense, sparse), answered))
    return out


def floor_table(
    scored: list[Scored], floors: list[RelevanceFloor]
) -> tuple[list[str], list[list[Any]]]:
    """Per floor: the share of each kind refused, and each real kind's recall lost (its
    answer was retrieved, and the floor refuses it)."""
    kinds = list(dict.fromkeys(s.kind for s in scored))
    real = [k for k in kinds if any(s.answered is not None for s in scored if s.kind == k)]
    headers = ["floor (no terms)"] + [f"{k} refused" for k in kinds]
    headers += [f"{k} recall lost" for k in real]
    rows = []
    for floor in floors:
        row: list[Any] = [f"{floor.cosine:.2f} ({floor.cosine_without_terms:.2f})"]
        for kind in kinds:
            group = [s for s in scored if s.kind == kind]
            row.append(sum(not floor.admits(s.relevance) for s in group) / len(group))
        for kind in real:
            group = [s for s in scored if s.kind == kind]
            lost = sum(bool(s.answered) and not floor.admits(s.relevance) for s in group)
            row.append(lost / len(group))
        rows.append(row)
    return headers, rows


def parse_floors(text: str) -> list[RelevanceFloor]:
    """ "0.54:0.62,0.55" -> floors (cosine, cosine without terms; the second defaults to 0)."""
    floors = []
    for part in text.split(","):
        cosine, _, without = part.partition(":")
        floors.append(RelevanceFloor(float(cosine), float(without or 0)))
    return floors


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench relevance")
    parser.add_argument("--squad", type=int, default=500, help="SQuAD questions (spread)")
    parser.add_argument("--hotpot", type=int, default=200, help="HotpotQA questions (spread)")
    parser.add_argument("--junk", type=int, default=300, help="generated junk questions")
    parser.add_argument("--top-k", type=int, default=16)
    parser.add_argument(
        "--floors", default=FLOORS, help="COSINE[:COSINE_WITHOUT_TERMS],... to tabulate"
    )
    args = parser.parse_args(argv)
    floors = parse_floors(args.floors)

    with tempfile.TemporaryDirectory() as tmp:
        settings, embedder, store, worker = fresh_worker(tmp, warm=False)
        roots = [SQUAD / "articles"]
        hotpot: list[dict[str, Any]] = []
        if args.hotpot and HOTPOT.exists():
            hotpot = hotpot_sample(args.hotpot, Path(tmp) / "hotpot")
            roots.append(Path(tmp) / "hotpot")
        summary = worker.run(roots)
        print(f"ingested {summary.ingested} files, {summary.passages} passages")
        questions = [
            ("squad", q["question"], q["answers"]) for q in spread(load_questions(), args.squad)
        ]
        questions += [("hotpot", q["question"], q["answers"]) for q in hotpot]
        questions += [(kind, q, []) for kind, q in junk_questions(args.junk)]
        retriever = Retriever(settings.retrieval, embedder, store)
        scored = score(retriever, questions, args.top_k)
        store.close()

    kinds = list(dict.fromkeys(s.kind for s in scored))
    quantiles = []
    for kind in kinds:
        group = [s.relevance for s in scored if s.kind == kind]
        cosines = [r.cosine if r.cosine is not None else -1.0 for r in group]
        quantiles.append(
            [kind, len(group), sum(not r.terms for r in group) / len(group)]
            + [percentile(cosines, p) for p in (1, 5, 50, 95, 99)]
        )
    print("\nBest passage's dense cosine, by kind of question (and the share sharing no term):\n")
    print(table(["kind", "n", "no term", "p1", "p5", "p50", "p95", "p99"], quantiles))
    lowest = sorted(
        (s for s in scored if s.answered is not None), key=lambda s: s.relevance.cosine or -1.0
    )[:5]
    print("\nLowest real questions: " + "; ".join(f"{s.relevance.cosine:.3f}" for s in lowest))
    headers, rows = floor_table(scored, floors)
    print("\nShare refused (no_matching_documents) and answer recall lost, by floor:\n")
    print(table(headers, rows))
    result = {
        "questions": {k: sum(s.kind == k for s in scored) for k in kinds},
        "top_k": args.top_k,
        "quantiles": {
            row[0]: dict(zip(["no_term", "p1", "p5", "p50", "p95", "p99"], row[2:]))
            for row in quantiles
        },
        "floors": [dict(zip(headers, row)) for row in rows],
        "scored": [[s.kind, s.relevance.cosine, s.relevance.terms, s.answered] for s in scored],
    }
    write_result("relevance", result)
    return result


if __name__ == "__main__":
    main()
