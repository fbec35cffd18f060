"""Opening the index a process works on: a verified (embedder, store) pair, written once.

Every process that reads or writes the store (the API, ``python -m ingest``, a queue worker,
the benchmarks) opens it the same way: the passage embedder (in-process, or the embedding
server), the store checked against that embedder's model (``SchemaMismatch`` otherwise),
then the probe-vector check that the embedder reproduces the vectors the collection was
built with. Any of these failing is a ``StartupError`` whose message is the one line an
operator needs; callers print it and exit 2 (CLIs) or fail start-up (the API). No store is
left open after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.embedding.factory import passage_embedder, query_embedder
from rag.embedding.protocol import Embedder
from rag.embedding.server import EmbeddingServerError
from rag.settings import Settings
from rag.store.probes import EmbeddingMismatch, verify_embedder
from rag.store.qdrant_store import QdrantStore
from rag.store.schema import StoreError


class StartupError(Exception):
    """A process cannot start as configured; the message is one line for the operator."""


@dataclass
class Index:
    """The embedder that writes passages, the one that embeds questions (the same object
    unless passages go to an embedding server and questions stay in-process), and the store
    both were verified against."""

    embedder: Embedder
    questions: Embedder
    store: QdrantStore

    def close(self) -> None:
        self.store.close()


def open_index(settings: Settings, *, recreate: bool = False, questions: bool = False) -> Index:
    """Open and verify. ``recreate`` drops the collections first (``--recreate``);
    ``questions`` also builds the question embedder (processes that answer queries)."""
    try:
        embedder = passage_embedder(settings.embedding)
        if recreate:
            store = QdrantStore.unchecked(settings, embedder.name, embedder.dimension)
            store.recreate()
        else:
            store = QdrantStore(settings, embedder.name, embedder.dimension)
    except (StoreError, EmbeddingServerError) as exc:
        raise StartupError(str(exc)) from exc
    asker = embedder
    if questions and settings.embedding_url and not settings.embedding_server_queries:
        asker = query_embedder(settings.embedding)  # in-process: one short text, no round trip
    try:
        for checked in {id(embedder): embedder, id(asker): asker}.values():
            verify_embedder(store, checked, settings.embedding_min_cosine)
    except (EmbeddingMismatch, EmbeddingServerError) as exc:
        store.close()
        raise StartupError(str(exc)) from exc
    return Index(embedder=embedder, questions=asker, store=store)
