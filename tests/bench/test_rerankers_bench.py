"""``bench rerankers`` runs end to end on a tiny HotpotQA-shaped corpus (no timing asserted)."""

import json
import shutil

import bench.multihop
import bench.rerankers
from tests.conftest import DOCS


def test_rerankers_bench(tmp_path, monkeypatch):
    hotpot = tmp_path / "hotpotqa-dev"
    (hotpot / "docs").mkdir(parents=True)
    shutil.copy(DOCS / "reactor-update.eml", hotpot / "docs" / "reactor.md")
    shutil.copy(DOCS / "Normans.md", hotpot / "docs" / "Normans.md")
    shutil.copy(DOCS / "release-notes.txt", hotpot / "docs" / "Kestrel.md")
    questions = [
        {"question": "Where was the Zorblax reactor built?", "gold_files": ["reactor.md"]},
        {"question": "Who was the leader of the Norse raiders?", "gold_files": ["Normans.md"]},
    ]
    (hotpot / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    monkeypatch.setattr(bench.multihop, "HOTPOT", hotpot)
    monkeypatch.setattr("bench.common.RESULTS", tmp_path / "results")
    out = bench.rerankers.main(["--questions", "2", "--pool", "3", "--top-k", "2", "--variant"])
    assert out["questions"] == 2 and out["paragraphs"] == 3
    assert set(out["both_gold"]) == {
        bench.rerankers.TODAY,
        bench.rerankers.NONE,
        bench.rerankers.CROSS,
        bench.rerankers.COLBERT,
        bench.rerankers.VARIANT,
    }
    # one gold file each, three files in all: every method finds it within the top 2
    assert all(r["@2"] == 1.0 for r in out["both_gold"].values())
    assert out["rerank_ms"][bench.rerankers.COLBERT]["p50"] > 0
    assert (tmp_path / "results" / "rerankers.json").is_file()
