"""``python -m bench evaluate`` on a tiny ingested corpus: every metric against a hand count."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.evaluate import (
    NOT_ANSWERED,
    NOT_PACKED,
    NOT_RETRIEVED,
    Record,
    Retrieved,
    main,
    source_matches,
    token_f1,
)

DOCS = {
    "valves.md": "# Quillon valves\n\nThe Quillon valve was invented in Tartu in 1931 by Maret "
    "Kask. It regulates steam flow in small boilers.",
    "bees.md": "# Honey bees\n\nHoney bees communicate the location of flowers with a waggle "
    "dance. A colony has one queen and thousands of workers.",
    "trains.md": "# Night trains\n\nThe Brisbane night train runs twice a week to Cairns and "
    "takes 25 hours end to end.",
}
QUESTIONS = [
    # q1: its source first; its answer in it
    {
        "question": "Who invented the Quillon valve?",
        "answers": ["Maret Kask"],
        "sources": ["valves.md"],
    },
    # q2: one of two expected sources exists (first), the other is in no document
    {
        "question": "How do honey bees tell each other where flowers are?",
        "answers": ["waggle dance"],
        "sources": ["docs/bees.md", "missing.md"],
    },
    # q3: its source first, the expected answer in no document (the source decides: passes)
    {
        "question": "How long does the night train to Cairns take?",
        "answers": ["three days"],
        "sources": ["trains.md"],
    },
    # q4: only an expected source, which does not exist
    {"question": "Which machine did the operator buy in 2020?", "sources": ["missing.md"]},
    # q5: only an expected answer
    {"question": "What does the Quillon valve regulate?", "answers": ["steam flow"]},
]


def test_metric_functions_by_hand() -> None:
    assert source_matches("bees.md", "docs/bees.md") and source_matches("docs/bees.md", "bees.md")
    assert not source_matches("bees.md", "honeybees.md")
    # "Maret Kask invented it" vs "Maret Kask": 2 common of 4 and 2 -> P 1/2, R 1, F1 2/3
    assert token_f1("Maret Kask invented it", ["Maret Kask"]) == pytest.approx(2 / 3)
    assert token_f1("The answer", ["Maret Kask"]) == 0.0
    r = Record("q", ["Kask"], ["a.md", "b.md"])
    r.retrieved = [Retrieved("a.md", "x Kask"), Retrieved("c.md", ""), Retrieved("b.md", "")]
    # ranks 1 and 3: DCG 1 + 1/log2(4) = 1.5; ideal 1 + 1/log2(3)
    assert r.ndcg() == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert (r.recall_at(1), r.recall_at(2), r.recall_at(3)) == (0.5, 0.5, 1.0)
    assert r.reciprocal_rank() == 1.0
    r.packed = "nothing"  # the answer was retrieved (a.md) but not packed
    assert r.failure() == NOT_PACKED
    r.packed, r.answer = "x Kask", "I do not know"
    assert r.failure() == NOT_ANSWERED
    r.answer = "It was Kask [1]."
    r.cited = [Retrieved("a.md", ""), Retrieved("c.md", "")]  # 1 of 2 cited is expected
    assert r.failure() is None and r.citation_precision() == 0.5
    r.retrieved = r.retrieved[1:2]  # no expected source retrieved
    assert r.failure() == NOT_RETRIEVED


def test_evaluate_on_a_tiny_corpus(tmp_path: Path, embedder, capsys) -> None:
    from tests.bench.tiny import tiny_store

    tiny_store(tmp_path, embedder, DOCS)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    report = tmp_path / "report.html"

    s = main(
        [
            str(questions),
            "--data-dir",
            str(tmp_path / "data"),
            "--top-k",
            "3",
            "--html",
            str(report),
            "--json",
            str(tmp_path / "m.json"),
        ]
    )

    # Sources (q1-q4): first ranks q1 1, q2 1 (and missing), q3 1, q4 none.
    assert s["with_sources"] == 4 and s["with_answers"] == 4
    assert s["hit"] == {1: 0.75, 3: 0.75}  # (1 + 1 + 1 + 0) / 4
    assert s["recall"][1] == s["recall"][3] == pytest.approx(0.625)  # (1 + 1/2 + 1 + 0) / 4
    assert s["recall_curve"] == pytest.approx([0.625] * 3)
    assert s["mrr"] == pytest.approx(0.75)  # (1/1 + 1/1 + 1/1 + 0) / 4
    # q2: DCG 1/log2(2) = 1, ideal 1 + 1/log2(3) -> 0.6131; (1 + 0.6131 + 1 + 0) / 4
    assert s["ndcg@10"] == pytest.approx((1 + 1 / (1 + 1 / math.log2(3)) + 1 + 0) / 4)
    # Answers (q1, q2, q3, q5): in the retrieved and the packed text for q1, q2, q5, not q3.
    assert s["answer_in_retrieved"] == pytest.approx(0.75)
    assert s["answer_in_packed"] == pytest.approx(0.75)
    assert s["answer_contains"] is None and s["citation_precision"] is None  # no --answer
    # q2 (one of its two sources in no document) and q4 (its source in no document) fail at
    # retrieval; q1, q3 (all its sources retrieved) and q5 (its answer packed) pass
    assert s["failures"] == {NOT_RETRIEVED: 2} and s["passed"] == 3
    assert s["search_ms"]["p95"] >= s["search_ms"]["p50"] > 0

    out = capsys.readouterr().out
    assert "| MRR | 0.750 |" in out and "Worst 2 questions" in out
    assert "Which machine did the operator buy in 2020?" in out and "honey bees" in out
    page = report.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<link" not in page and "src=" not in page  # self-contained: nothing fetched
    assert json.loads((tmp_path / "m.json").read_text())["passed"] == 3
