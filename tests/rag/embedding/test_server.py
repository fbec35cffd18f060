"""The embedding server (real vLLM pooling runner on the CPU, dequantized BGE) against the
in-process model, and the probe check that refuses an embedder with other vectors."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embedding.server import EmbeddingServerError, ServerEmbedder
from rag.settings import Settings
from rag.store.probes import EmbeddingMismatch, verify_embedder
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS
from tests.helpers.servers import free_port


def _passages() -> list[str]:
    """Paragraphs of the fixture documents that are plain text (passage-sized texts)."""
    texts = []
    for path in sorted(DOCS.iterdir()):
        if path.suffix in (".md", ".txt", ".eml"):
            texts += [
                " ".join(p.split()) for p in path.read_text().split("\n\n") if len(p.split()) >= 12
            ]
    return texts


def test_server_vectors_match_the_in_process_model(embedding_server, embedder):
    server = ServerEmbedder(Settings(embedding_url=embedding_server))
    try:
        texts = _passages()
        assert len(texts) >= 10
        mine, theirs = embedder.embed_passages(texts), server.embed_passages(texts)
        cosines = np.sum(mine * theirs, axis=1)
        assert cosines.min() >= 0.995, sorted(cosines)[:5]
        questions = ["Where was the Zorblax reactor built?", "What changed in the release?"]
        q = np.sum(embedder.embed_queries(questions) * server.embed_queries(questions), axis=1)
        assert q.min() >= 0.99
        assert server.dimension == embedder.dimension
        # the same token counts: the chunker sizes passages with the same tokenizer
        assert server.token_offsets(texts[0]) == embedder.token_offsets(texts[0])
    finally:
        server.close()


def test_a_text_over_the_window_is_cut_not_refused(embedding_server):
    server = ServerEmbedder(Settings(embedding_url=embedding_server))
    try:
        vectors = server.embed_passages(["lantern " * 3000, "short"])
        assert vectors.shape == (2, 384)
    finally:
        server.close()


def test_an_unreachable_server_is_an_error_after_the_retries():
    settings = Settings(
        embedding_url=f"http://127.0.0.1:{free_port()}/v1",
        embedding_retries=1,
        embedding_timeout_s=2,
    )
    server = ServerEmbedder(settings)
    try:
        with pytest.raises(EmbeddingServerError, match="failed after retries") as caught:
            server.embed_passages(["text"])
        assert caught.value.transient
    finally:
        server.close()


class _OtherModel:
    """Stands for a server serving another checkpoint under the same name."""

    def __init__(self, real) -> None:
        self.real, self.name, self.dimension = real, real.name, real.dimension
        self.max_tokens = real.max_tokens

    def token_offsets(self, text):
        return self.real.token_offsets(text)

    def embed_passages(self, texts):
        return np.roll(self.real.embed_passages(texts), 7, axis=1)

    def embed_queries(self, texts):
        return np.roll(self.real.embed_queries(texts), 7, axis=1)


def test_an_embedder_with_other_vectors_is_refused(tmp_path, embedder, embedding_server):
    settings = Settings(data_dir=tmp_path / "data", embedding_url=embedding_server)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    server = ServerEmbedder(settings)
    try:
        assert verify_embedder(store, embedder, 0.995) == 1.0  # the first one sets the probes
        assert verify_embedder(store, embedder, 0.995) > 0.9999
        assert verify_embedder(store, server, 0.995) >= 0.995  # same model on a server
        with pytest.raises(EmbeddingMismatch, match="does not reproduce"):
            verify_embedder(store, _OtherModel(embedder), 0.995)
        store.recreate()  # a rebuilt store takes new probes
        assert verify_embedder(store, _OtherModel(embedder), 0.995) == 1.0
    finally:
        server.close()
        store.close()
