"""Budget correctness over thousands of random requests, and the cost of packing 128K.

Every request is packed by the real pipeline and its prompt counted by the real Llama 3.1
tokenizer (the chat template included). Reports the largest (prompt + max_tokens) / window
seen, which must never exceed 1 - margin, and the time to pack a full 128K context.

Usage: python -m bench budget [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from bench.common import SQUAD, percentile, table, write_result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench budget")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from rag.answer.budget import BudgetError
    from rag.answer.pipeline import RagPipeline
    from rag.documents import Hit, MatchedPassage
    from rag.settings import Settings
    from rag.text.tokens import count_llama31_chat, count_tokens

    rng = random.Random(args.seed)
    corpus = "\n\n".join(f.read_text() for f in sorted((SQUAD / "articles").glob("*.md")))

    def hit(i: int, length: int, passages: int) -> Hit:
        start = rng.randrange(0, len(corpus) - length)
        text = corpus[start : start + length]
        population = range(0, max(1, len(text) - 800))
        spans = sorted(rng.sample(population, k=min(passages, 5, len(population))))
        return Hit(
            parent_id=f"p{i}",
            document_id=f"d{i % 7}",
            source=f"/d{i % 7}.md",
            title=f"Doc {i % 7}",
            file_type="md",
            pages=[],
            heading="",
            text=text,
            start=start,
            end=start + len(text),
            tokens=count_tokens(text),
            score=1 / (1 + i),
            parent_index=i,
            passages=[
                MatchedPassage(start + s, start + min(s + 800, len(text)), 1 / (1 + i + j))
                for j, s in enumerate(spans)
            ],
        )

    worst, refused, fills = 0.0, 0, []
    margin = 0.10
    started = time.perf_counter()
    for _ in range(args.requests):
        window = rng.choice([8192, 16384, 32768, 65536, 131072])
        settings = Settings(
            context_window=window,
            margin_ratio=margin,
            llm_tokenizer="llama3",
            target_fill_tokens=rng.choice([2048, 8192, 32768, 131072]),
        )
        pipeline = RagPipeline(settings, embedder=None, store=None)  # type: ignore[arg-type]
        question = corpus[: rng.randint(5, 40_000)][-rng.randint(5, 4_000) :]
        hits = [
            hit(i, rng.randint(200, 20_000), rng.randint(0, 8)) for i in range(rng.randint(0, 16))
        ]
        max_tokens = rng.randint(1, window // 2)
        try:
            prepared = asyncio.run(pipeline.packer.pack(question, hits, max_tokens=max_tokens))
        except BudgetError:
            refused += 1
            continue
        exact = count_llama31_chat(prepared.messages)
        assert exact == prepared.prompt_tokens
        ratio = (exact + max_tokens) / window
        worst = max(worst, ratio)
        fills.append(exact / window)
    elapsed = time.perf_counter() - started

    # Packing a full 128K context: 40 parents of ~4K tokens.
    settings = Settings(context_window=131072, target_fill_tokens=131072, llm_tokenizer="llama3")
    pipeline = RagPipeline(settings, embedder=None, store=None)  # type: ignore[arg-type]
    big = [hit(i, 16_000, 8) for i in range(40)]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        prepared = asyncio.run(pipeline.packer.pack("What happened?", big, max_tokens=1024))
        times.append(time.perf_counter() - t0)
    rows = [
        ["requests", args.requests],
        ["refused with 413 (question alone too big)", refused],
        ["largest (prompt + max_tokens) / window", f"{worst:.4f}"],
        ["allowed maximum (1 - margin)", f"{1 - margin:.4f}"],
        ["median prompt fill of window", f"{percentile(fills, 50):.3f}"],
        ["seconds for all requests", f"{elapsed:.1f}"],
        ["pack a 128K context: prompt tokens", f"{prepared.prompt_tokens:,}"],
        ["pack a 128K context: p50 ms", f"{percentile(times, 50) * 1000:.0f}"],
    ]
    print(table(["measure", "value"], rows))
    result = {
        "requests": args.requests,
        "refused": refused,
        "worst_ratio": worst,
        "limit": 1 - margin,
        "pack_128k_ms": percentile(times, 50) * 1000,
        "pack_128k_prompt_tokens": prepared.prompt_tokens,
    }
    write_result("budget", result)
    assert worst <= 1 - margin, "budget invariant violated"
    return result
