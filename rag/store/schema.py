"""The store's collections and their schema: names, creation, and the refusal to mix models.

The passages collection's metadata records the embedding model, its dimension and the sparse
scheme; opening it with another model is refused instead of mixing vector spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdrant_client import models as qm

from rag.embedding.sparse import SPARSE_SCHEME
from rag.settings import StoreSettings
from rag.store.client import QdrantAPI

SCHEMA_VERSION = 2  # 1 was dense-only; 2 adds the bm25 sparse vector


class StoreError(RuntimeError):
    """The store cannot be used as configured; the message says what to do."""


class SchemaMismatch(StoreError):
    """The collection was built with another model or layout."""


@dataclass(frozen=True)
class Collections:
    """The three collections sharing the ``RAG_COLLECTION`` prefix."""

    passages: str
    parents: str
    documents: str
    #: vectors of fixed texts by the embedder that built the store (rag.store.probes)
    probes: str = ""

    @classmethod
    def of(cls, prefix: str) -> Collections:
        return cls(
            f"{prefix}_passages", f"{prefix}_parents", f"{prefix}_documents", f"{prefix}_probes"
        )

    def all(self) -> tuple[str, str, str]:
        return self.passages, self.parents, self.documents


class Schema:
    """Creates and checks the collections for one embedding model."""

    def __init__(
        self,
        client: QdrantAPI,
        names: Collections,
        settings: StoreSettings,
        model_name: str,
        dimension: int,
    ) -> None:
        self.client, self.names, self.settings = client, names, settings
        self.model_name, self.dimension = model_name, dimension

    def _metadata(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "embedding_model": self.model_name,
            "dimension": self.dimension,
            "sparse": SPARSE_SCHEME,
        }

    def ensure(self) -> None:
        """Create what is missing, check what exists (``SchemaMismatch`` on another model)."""
        s, names = self.settings, self.names
        if self.client.collection_exists(names.passages):
            self.check()
        else:
            self.client.create_collection(
                names.passages,
                vectors_config={
                    "dense": qm.VectorParams(size=self.dimension, distance=qm.Distance.COSINE)
                },
                sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                shard_number=s.qdrant_shards,
                replication_factor=s.qdrant_replicas,
                metadata=self._metadata(),
            )
        for name in (names.parents, names.documents):
            if not self.client.collection_exists(name):
                self.client.create_collection(
                    name,
                    vectors_config={},
                    shard_number=s.qdrant_shards,
                    replication_factor=s.qdrant_replicas,
                )
        if s.qdrant_url or s.embedded_engine == "edge":
            # qdrant-client's local mode has no payload indexes; a server and Edge do
            for collection, keys in (
                (
                    names.passages,
                    ("document_id", "parent_id", "folders", "file_type", "content_hash"),
                ),
                (names.parents, ("document_id", "content_hash")),
                (names.documents, ("source", "state")),
            ):
                for key in keys:
                    self.client.create_payload_index(collection, key, qm.PayloadSchemaType.KEYWORD)
                # access (``rag.access``): the collection is a tenant index (Qdrant keeps each
                # tenant's points together), the acl tokens a keyword index
                self.client.create_payload_index(
                    collection,
                    "collection",
                    qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
                )
                self.client.create_payload_index(collection, "acl", qm.PayloadSchemaType.KEYWORD)

    def check(self) -> None:
        config = self.client.get_collection(self.names.passages).config
        meta = config.metadata or {}
        has_sparse = bool(config.params.sparse_vectors and "bm25" in config.params.sparse_vectors)
        if not has_sparse or meta.get("schema_version", 1) < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"collection '{self.names.passages}' was created by an older version without "
                "BM25 sparse vectors; rebuild it with `python -m ingest --recreate PATH` "
                "(drops and re-ingests), or set RAG_COLLECTION to a new name"
            )
        found = (meta.get("embedding_model"), meta.get("dimension"), meta.get("sparse"))
        wanted = (self.model_name, self.dimension, SPARSE_SCHEME)
        if found != wanted:
            raise SchemaMismatch(
                f"collection '{self.names.passages}' holds vectors of model {found[0]!r} "
                f"(dim {found[1]}, sparse {found[2]!r}) but the service is configured for "
                f"{wanted[0]!r} (dim {wanted[1]}, sparse {wanted[2]!r}); use another "
                "RAG_COLLECTION or re-ingest with --recreate"
            )

    def recreate(self) -> None:
        """Drop every collection of this prefix and build the schema again."""
        for name in (*self.names.all(), self.names.probes):
            if self.client.collection_exists(name):
                self.client.delete_collection(name)
        self.ensure()
