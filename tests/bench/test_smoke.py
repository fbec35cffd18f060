"""Each benchmark runs end to end on a tiny corpus, so none of them can rot.

No timing is asserted here (benchmarks are not tests); they must run, report, and report
figures that fall when retrieval or ingestion breaks (recall floors on the tiny corpus).
"""

import json
import shutil

import pytest

import bench.budget
import bench.conversation
import bench.ingest
import bench.latency
import bench.peer
import bench.retrieval
from tests.bench.tiny import tiny_squad
from tests.conftest import DOCS, ROOT


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    squad = tiny_squad(tmp_path)
    mixed = tmp_path / "mixed"
    shutil.copytree(DOCS, mixed)
    (mixed / "pdf").mkdir()
    shutil.copy(ROOT / "samples" / "docs" / "manuals" / "R-FAQ.pdf", mixed / "pdf")
    for module in (
        bench.ingest,
        bench.retrieval,
        bench.peer,
        bench.latency,
        bench.budget,
        bench.conversation,
    ):
        if hasattr(module, "SQUAD"):
            monkeypatch.setattr(module, "SQUAD", squad)
        if hasattr(module, "MIXED"):
            monkeypatch.setattr(module, "MIXED", mixed)
    monkeypatch.setattr("bench.common.SQUAD", squad)
    monkeypatch.setattr("bench.common.RESULTS", tmp_path / "results")
    return tmp_path


def test_ingest_bench(tiny):
    shutil.rmtree(tiny / "mixed" / "pdf")  # the scanned bench's source, not a mixed file here
    out = bench.ingest.main(["--corpus", "both", "--repeat", "2"])
    assert {r["corpus"] for r in out["results"]} == {"squad", "mixed"}
    assert all(r["ceiling_ratio"] > 0 and len(r["ratios"]) == 2 for r in out["results"])
    assert all(
        r["ratio_spread"][0] <= r["ceiling_ratio"] <= r["ratio_spread"][1] for r in out["results"]
    )
    squad = next(r for r in out["results"] if r["corpus"] == "squad")
    assert squad["failed"] == 0 and squad["passages"] >= squad["parents"] >= 2


def test_retrieval_bench(tiny):
    out = bench.retrieval.main(["--rerank-limit", "3"])
    assert out["questions"] == 3
    recall = out["recall"]
    # Every answer is in the tiny corpus: top-3 and packed 4K must find all three.
    for system in ("ours hybrid", "ours dense", "ours sparse", "ours hybrid+rerank, pool 40"):
        assert recall[system]["@3"] == 1.0 and recall[system]["4K"] == 1.0, system


def test_budget_bench(tiny):
    out = bench.budget.main(["--requests", "20"])
    assert out["worst_ratio"] <= out["limit"]


def test_latency_bench(tiny):
    out = bench.latency.main(
        [
            "--sizes",
            "100,300",
            "--requests",
            "6",
            "--engines",
            "edge,python",
            "--python-requests",
            "2",
        ]
    )
    assert len(out["sizes"]) == 2 and len(out["engines"]["python"]) == 2


def test_peer_bench(tiny):
    pytest.importorskip("llama_index.core", reason="bench extra not installed")
    out = bench.peer.main(["--questions", "3"])
    assert out["llamaindex"]["tokens_per_s"] > 0 and out["ours"]["tokens_per_s"] > 0


def test_scanned_ingest_bench(tiny):
    out = bench.ingest.main(["--corpus", "scanned", "--scan-from", "7", "--scan-pages", "2"])
    assert out["pages"] == 2 and out["stages"]["ocr"] > 0 and not out["failed"]
    assert out["cer_median"] < 0.03  # two pages of the R FAQ's prose, read by Tesseract


def test_conversation_bench(tiny, vllm, monkeypatch):
    # two questions naming an article's subject: one two-turn conversation
    questions = tiny / "squad2-dev" / "questions.jsonl"
    questions.write_text(
        questions.read_text()
        + "\n"
        + "\n".join(
            json.dumps(q)
            for q in [
                {
                    "question": "When were the Normans in Normandy?",
                    "answers": ["10th and 11th"],
                    "document": "articles/Normans.md",
                },
                {
                    "question": "Who was the leader of the Normans in 911?",
                    "answers": ["Rollo"],
                    "document": "articles/Normans.md",
                },
            ]
        )
    )
    monkeypatch.setenv("RAG_LLM_BASE_URL", vllm)
    out = bench.conversation.main(["--concurrency", "1"])
    assert out["conversations"] == 1
    recall = out["recall"]
    # the follow-up names its subject only through the first turn; the fallback restores it
    assert recall["fallback (recent questions joined)"]["4K"] == 1.0
    assert recall["standalone (subject named; ceiling)"]["4K"] == 1.0


def test_relevance_bench(tiny, monkeypatch):
    import bench.relevance

    hotpot = tiny / "hotpotqa-dev"
    (hotpot / "docs").mkdir(parents=True)
    shutil.copy(DOCS / "reactor-update.eml", hotpot / "docs" / "reactor.md")
    question = {"question": "Where was the Zorblax reactor built?", "answer": "Oslo"}
    (hotpot / "questions.jsonl").write_text(json.dumps({**question, "gold_files": ["reactor.md"]}))
    monkeypatch.setattr(bench.relevance, "SQUAD", tiny / "squad2-dev")
    monkeypatch.setattr(bench.relevance, "HOTPOT", hotpot)
    out = bench.relevance.main(["--junk", "6", "--floors", "0,0.5:0.7"])
    assert out["questions"] == {"squad": 3, "hotpot": 1, "gibberish": 2, "mash": 2, "off-topic": 2}
    off, on = out["floors"]
    assert off["squad recall lost"] == 0 and off["gibberish refused"] == 0  # no floor
    assert on["squad recall lost"] == 0 and on["mash refused"] > 0  # real kept, junk refused
