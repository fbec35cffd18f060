"""Which embedder a process uses: the in-process model, or an embedding server."""

from __future__ import annotations

from rag.embedding.local import SentenceTransformerEmbedder
from rag.embedding.protocol import Embedder
from rag.settings import EmbeddingSettings


def passage_embedder(settings: EmbeddingSettings) -> Embedder:
    """For ingestion: the server when ``RAG_EMBEDDING_URL`` is set."""
    if settings.embedding_url:
        from rag.embedding.server import ServerEmbedder

        return ServerEmbedder(settings)
    return SentenceTransformerEmbedder(settings)


def query_embedder(settings: EmbeddingSettings) -> Embedder:
    """For questions: in-process unless ``RAG_EMBEDDING_SERVER_QUERIES`` (one short text is
    faster here than a round trip; see BENCHMARKS.md)."""
    if settings.embedding_url and settings.embedding_server_queries:
        from rag.embedding.server import ServerEmbedder

        return ServerEmbedder(settings)
    return SentenceTransformerEmbedder(settings)
