"""Each benchmark runs end to end on a tiny corpus, so none of them can rot.

No timing is asserted here (benchmarks are not tests); only that they run and report.
"""

import json
import shutil

import pytest

import bench.budget
import bench.ingest
import bench.latency
import bench.peer
import bench.retrieval
from tests.conftest import DOCS


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    squad = tmp_path / "squad2-dev"
    (squad / "articles").mkdir(parents=True)
    shutil.copy(DOCS / "Normans.md", squad / "articles")
    shutil.copy(DOCS / "release-notes.txt", squad / "articles" / "Kestrel.md")
    questions = [
        {"question": "Who was the leader of the Norse raiders?", "answers": ["Rollo"]},
        {"question": "How many changes can the offline queue hold?", "answers": ["5,000"]},
        {"question": "What is the default session timeout?", "answers": ["45 minutes"]},
    ]
    (squad / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    mixed = tmp_path / "mixed"
    shutil.copytree(DOCS, mixed)
    for module in (bench.ingest, bench.retrieval, bench.peer, bench.latency, bench.budget):
        if hasattr(module, "SQUAD"):
            monkeypatch.setattr(module, "SQUAD", squad)
        if hasattr(module, "MIXED"):
            monkeypatch.setattr(module, "MIXED", mixed)
    monkeypatch.setattr("bench.common.SQUAD", squad)
    monkeypatch.setattr("bench.common.RESULTS", tmp_path / "results")
    return tmp_path


def test_ingest_bench(tiny):
    out = bench.ingest.main(["--corpus", "both"])
    assert {r["corpus"] for r in out["results"]} == {"squad", "mixed"}
    assert all(r["ceiling_ratio"] > 0 for r in out["results"])


def test_retrieval_bench(tiny):
    out = bench.retrieval.main(["--rerank-limit", "2"])
    assert out["questions"] == 3 and "ours hybrid" in out["recall"]


def test_budget_bench(tiny):
    out = bench.budget.main(["--requests", "20"])
    assert out["worst_ratio"] <= out["limit"]


def test_latency_bench(tiny):
    out = bench.latency.main(["--sizes", "100,300", "--requests", "6", "--engines",
                              "edge,python", "--python-requests", "2"])
    assert len(out["sizes"]) == 2 and len(out["engines"]["python"]) == 2


def test_peer_bench(tiny):
    pytest.importorskip("llama_index.core", reason="bench extra not installed")
    out = bench.peer.main(["--questions", "3"])
    assert out["llamaindex"]["tokens_per_s"] > 0 and out["ours"]["tokens_per_s"] > 0
