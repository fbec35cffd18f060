"""The store: one Qdrant (a server, or an embedded engine in a folder) behind one object.

``QdrantStore`` opens the engine (``rag.store.engine``), makes or checks the schema
(``rag.store.schema``), repairs replaces a crash interrupted, and hands out the two jobs the
rest of the service needs as attributes, not forwarding methods: ``documents``
(``rag.store.documents.DocumentStore``: records, the crash-safe replace, delete) and
``search`` (``rag.store.search.PassageSearch``: hybrid search grouped to parents, parents
by id). Both share one client and one lock. Three collections share a prefix (``names``):
``<c>_passages`` (a dense and a BM25 sparse vector per passage), ``<c>_parents``
(vector-less parent texts, ids = the passages' ``parent_id``) and ``<c>_documents`` (one
record per document, the commit marker of its version). What is stored in them is
``rag.store.payloads``.

Settings: the store is built from ``settings.store`` (engine, schema, recovery); its
searches' defaults (mode, fusion, prefetch, passages per parent) are ``settings.retrieval``:
each part gets only its group.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rag.settings import Settings
from rag.store.client import QdrantAPI
from rag.store.documents import DocumentStore
from rag.store.engine import adopt_python_store, connect
from rag.store.schema import Collections, Schema
from rag.store.search import PassageSearch


class QdrantStore:
    """A Qdrant server (a URL) or an embedded engine (a folder), one code path for all."""

    def __init__(
        self, settings: Settings, model_name: str, dimension: int, check: bool = True
    ) -> None:
        self.settings = settings
        self.model_name, self.dimension = model_name, dimension
        self.names = Collections.of(settings.collection)
        self.embedded = not settings.qdrant_url
        # The pure-Python local client has no internal locking, and Edge's facade keeps
        # per-collection state: one caller at a time.
        self._lock = threading.RLock()
        self.client: QdrantAPI = connect(settings.store)
        adopt_python_store(self.client, settings.store, self.names)
        self.schema = Schema(self.client, self.names, settings.store, model_name, dimension)
        self.documents = DocumentStore(self.client, self.names, self._lock)
        self.search = PassageSearch(
            self.client,
            self.names,
            settings.retrieval,
            self._lock,
            self.documents.committed_hashes,
            self.embedded,
        )
        self.documents.forget_cached = self.search.forget
        if check:
            try:
                self.ensure_schema()
                older = settings.stale_replace_seconds if settings.qdrant_url else 0.0
                self.documents.recover(older_than=older)
            except BaseException:
                self.close()  # an embedded folder must not stay locked by a refused open
                raise

    @classmethod
    def unchecked(cls, settings: Settings, model_name: str, dimension: int) -> QdrantStore:
        """Open without validating the schema or repairing anything (to ``recreate()``)."""
        return cls(settings, model_name, dimension, check=False)

    @contextmanager
    def session(self) -> Iterator[QdrantAPI]:
        """The client, held exclusively: for other collections of this store (probe vectors)."""
        with self._lock:
            yield self.client

    def ensure_schema(self) -> None:
        with self._lock:
            self.schema.ensure()

    def recreate(self) -> None:
        """Drop every collection of this prefix and build the schema again."""
        with self._lock:
            self.schema.recreate()

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def optimize(self) -> bool:
        """Index the passages now (the embedded Edge engine builds HNSW only when asked; a
        server optimizes in the background). True when something was done."""
        optimize = getattr(self.client, "optimize", None)
        if optimize is None:
            return False
        with self._lock:
            optimize(self.names.passages)
        return True
