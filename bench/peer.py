"""Side by side with LlamaIndex on SQuAD-dev, in one run, on the same machine.

Both use the same BGE files (int8 ONNX through sentence-transformers, query instruction on).
LlamaIndex: SentenceSplitter at --chunk-size (512 by default: at 1024 BGE would silently drop
half of each chunk), VectorStoreIndex over qdrant-client's local mode (its QdrantVectorStore
takes a QdrantClient), dense retriever. Ours: the ingestion worker and the hybrid pipeline on
our default embedded engine (Qdrant Edge), and again on qdrant-client's local mode, the
peer's engine, so the engine's share of the difference is visible. Reported: ingestion
tokens/s, search latency (query embedding + store query) and answer recall at top-k and at
equal token budgets.

Needs the bench extra: .venv/bin/pip install -e '.[bench]'
Usage: python -m bench peer [--questions N] [--chunk-size 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SQUAD, load_questions, percentile, table, write_result
from bench.retrieval import contains
from rag.store.documents import EVERYTHING


def run_llamaindex(
    files: list[Path], questions: list[dict[str, Any]], chunk_size: int, settings: Any
) -> dict[str, Any]:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from rag.assets import bge_path
    from rag.text.tokens import count_tokens

    embed = HuggingFaceEmbedding(
        model_name=str(bge_path(settings.model_dir)),
        device="cpu",
        embed_batch_size=32,
        query_instruction=settings.query_instruction,
        backend="onnx",
        model_kwargs={"file_name": "onnx/model.onnx"},
    )
    docs = [Document(text=f.read_text(), metadata={"file": f.name}) for f in files]
    tokens = sum(count_tokens(d.text) for d in docs)
    with tempfile.TemporaryDirectory() as tmp:
        client = QdrantClient(path=tmp)
        store = QdrantVectorStore(client=client, collection_name="peer")
        started = time.perf_counter()
        index = VectorStoreIndex.from_documents(
            docs,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed,
            transformations=[SentenceSplitter(chunk_size=chunk_size)],
        )
        ingest_s = time.perf_counter() - started
        retriever = index.as_retriever(similarity_top_k=5)
        latencies, hits, budget = [], {1: 0, 3: 0, 5: 0}, []
        for q in questions:
            t0 = time.perf_counter()
            nodes = retriever.retrieve(q["question"])
            latencies.append(time.perf_counter() - t0)
            texts = [n.node.get_content() for n in nodes]
            for k in hits:
                hits[k] += contains("\n".join(texts[:k]), q["answers"])
            budget.append(sum(count_tokens(t) for t in texts))
        client.close()
    n = len(questions)
    return {
        "ingest_seconds": ingest_s,
        "tokens": tokens,
        "tokens_per_s": tokens / ingest_s,
        "recall": {f"@{k}": v / n for k, v in hits.items()},
        "mean_tokens_top5": sum(budget) / n,
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000,
        },
    }


def run_ours(
    files_dir: Path, questions: list[dict[str, Any]], budget: int, settings: Any
) -> dict[str, Any]:
    from ingest.indexer import Indexer
    from rag.answer.budget import choose_sources
    from rag.answer.pipeline import RagPipeline
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.store.qdrant_store import QdrantStore
    from rag.text.tokens import count_tokens

    embedder = SentenceTransformerEmbedder(settings)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    summary = Indexer(settings, embedder, store).run([files_dir])
    pipeline = RagPipeline(settings, embedder, store)
    latencies, hits, packed = [], {1: 0, 3: 0, 5: 0}, 0
    for q in questions:
        t0 = time.perf_counter()
        found = pipeline.search(q["question"], top_k=16, scope=EVERYTHING)
        latencies.append(time.perf_counter() - t0)
        texts = [h.text for h in found]
        for k in hits:
            hits[k] += contains("\n".join(texts[:k]), q["answers"])
        sources = choose_sources(found, budget, lambda h, t: count_tokens(t))
        packed += contains("\n\n".join(s.text for s in sources), q["answers"])
    store.close()
    n = len(questions)
    return {
        "ingest_seconds": summary.seconds,
        "tokens": summary.tokens,
        "tokens_per_s": summary.tokens / summary.seconds,
        "recall": {f"@{k}": v / n for k, v in hits.items()},
        "packed_at_peer_budget": packed / n,
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000,
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench peer")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=512)
    args = parser.parse_args(argv)
    from rag.settings import Settings

    questions = load_questions(args.questions)
    files = sorted((SQUAD / "articles").glob("*.md"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        peer = run_llamaindex(files, questions, args.chunk_size, settings)
        budget = int(peer["mean_tokens_top5"])
        ours = run_ours(SQUAD / "articles", questions, budget, settings)
        same_engine = run_ours(
            SQUAD / "articles",
            questions,
            budget,
            Settings(data_dir=Path(tmp) / "python", embedded_engine="python"),
        )
    rows = [
        [
            "ingestion tokens/s",
            f"{ours['tokens_per_s']:,.0f}",
            f"{peer['tokens_per_s']:,.0f}",
            f"{ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x",
        ],
        [
            "search latency p50 (ms)",
            f"{ours['latency_ms']['p50']:.1f}",
            f"{peer['latency_ms']['p50']:.1f}",
            f"{ours['latency_ms']['p50'] / peer['latency_ms']['p50']:.2f}x",
        ],
        [
            "search latency p95 (ms)",
            f"{ours['latency_ms']['p95']:.1f}",
            f"{peer['latency_ms']['p95']:.1f}",
            f"{ours['latency_ms']['p95'] / peer['latency_ms']['p95']:.2f}x",
        ],
        [
            "search latency p50 (ms), ours on the peer's engine (qdrant-client local)",
            f"{same_engine['latency_ms']['p50']:.1f}",
            f"{peer['latency_ms']['p50']:.1f}",
            f"{same_engine['latency_ms']['p50'] / peer['latency_ms']['p50']:.2f}x",
        ],
        [
            "ingestion tokens/s, ours on the peer's engine",
            f"{same_engine['tokens_per_s']:,.0f}",
            f"{peer['tokens_per_s']:,.0f}",
            f"{same_engine['tokens_per_s'] / peer['tokens_per_s']:.2f}x",
        ],
    ]
    for k in ("@1", "@3", "@5"):
        rows.append(
            [
                f"answer recall top{k[1:]} units",
                f"{ours['recall'][k]:.3f} (parents)",
                f"{peer['recall'][k]:.3f} ({args.chunk_size}-token chunks)",
                "",
            ]
        )
    rows.append(
        [
            f"answer recall at {budget:,} tokens (peer's top-5 budget)",
            f"{ours['packed_at_peer_budget']:.3f}",
            f"{peer['recall']['@5']:.3f}",
            "",
        ]
    )
    print(f"\nOurs vs LlamaIndex on {len(questions)} SQuAD-dev questions, 35 articles:\n")
    print(table(["measure", "ours", "LlamaIndex", "ratio"], rows))
    result = {
        "questions": len(questions),
        "chunk_size": args.chunk_size,
        "ours": ours,
        "ours_on_peer_engine": same_engine,
        "llamaindex": peer,
    }
    write_result("peer", result)
    return result
