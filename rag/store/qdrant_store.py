"""The store: one Qdrant (a server, or an embedded engine in a folder) behind one object.

``QdrantStore`` opens the engine (``rag.store.engine``), makes or checks the schema
(``rag.store.schema``), repairs replaces a crash interrupted, and hands out the two jobs the
rest of the service needs: documents (``rag.store.documents``: records, the crash-safe
replace, delete) and search (``rag.store.search``: hybrid search grouped to parents).
Three collections share a prefix: ``<c>_passages`` (a dense and a BM25 sparse vector per
passage), ``<c>_parents`` (vector-less parent texts, ids = the passages' ``parent_id``) and
``<c>_documents`` (one record per document, the commit marker of its version).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rag.documents import Hit
from rag.embedding.sparse import SparseVector
from rag.settings import Fusion, RetrievalMode, Settings
from rag.store.client import QdrantAPI
from rag.store.documents import DocumentStore, ParentPoint, PassagePoint
from rag.store.engine import adopt_python_store, connect, copy_points
from rag.store.payloads import DocumentRecord, ParentPayload
from rag.store.schema import Collections, Schema, SchemaMismatch, StoreError
from rag.store.search import PassageSearch, SearchFilters, folders_of, group_points

__all__ = [
    "QdrantStore",
    "ParentPoint",
    "PassagePoint",
    "SearchFilters",
    "StoreError",
    "SchemaMismatch",
    "folders_of",
    "group_points",
    "copy_points",
]


class QdrantStore:
    """A Qdrant server (a URL) or an embedded engine (a folder), one code path for all."""

    def __init__(
        self, settings: Settings, model_name: str, dimension: int, check: bool = True
    ) -> None:
        self.settings = settings
        self.model_name, self.dimension = model_name, dimension
        self.names = Collections.of(settings.collection)
        self.passages, self.parents, self.documents = self.names.all()
        self.embedded = not settings.qdrant_url
        # The pure-Python local client has no internal locking, and Edge's facade keeps
        # per-collection state: one caller at a time.
        self._lock = threading.RLock()
        self.client: QdrantAPI = connect(settings)
        adopt_python_store(self.client, settings, self.names)
        self.schema = Schema(self.client, self.names, settings, model_name, dimension)
        self.docs = DocumentStore(self.client, self.names, self._lock)
        self.searcher = PassageSearch(
            self.client, self.names, settings, self._lock, self.docs.committed_hashes
        )
        if check:
            self.ensure_schema()
            self.recover(older_than=settings.stale_replace_seconds if settings.qdrant_url else 0.0)

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

    # --- documents ---------------------------------------------------------------------------
    def get_document(self, document_id: str) -> DocumentRecord | None:
        return self.docs.get_document(document_id)

    def list_documents(self) -> list[DocumentRecord]:
        return self.docs.list_documents()

    def count_passages(self) -> int:
        return self.docs.count_passages()

    def optimize(self) -> bool:
        """Index the passages now (the embedded Edge engine builds HNSW only when asked; a
        server optimizes in the background). True when something was done."""
        optimize = getattr(self.client, "optimize", None)
        if optimize is None:
            return False
        with self._lock:
            optimize(self.passages)
        return True

    def replace_document(
        self, record: DocumentRecord, parents: list[ParentPoint], passages: list[PassagePoint]
    ) -> None:
        self.docs.replace_document(record, parents, passages)

    def delete_document(self, document_id: str) -> bool:
        return self.docs.delete_document(document_id)

    def recover(self, older_than: float = 0.0) -> int:
        return self.docs.recover(older_than)

    def committed_hashes(self, document_ids: Iterable[str]) -> dict[str, str]:
        return self.docs.committed_hashes(document_ids)

    # --- search ------------------------------------------------------------------------------
    def parent(self, parent_id: str) -> ParentPayload | None:
        return self.searcher.parent(parent_id)

    def search(
        self,
        dense: list[float] | None,
        sparse: SparseVector | None,
        *,
        limit: int,
        filters: SearchFilters | None = None,
        mode: RetrievalMode | None = None,
        fusion: Fusion | None = None,
        group_size: int | None = None,
    ) -> list[Hit]:
        return self.searcher.search(
            dense,
            sparse,
            limit=limit,
            filters=filters,
            mode=mode,
            fusion=fusion,
            group_size=group_size,
        )
