"""Which Qdrant engine a store talks to, and the one-off move between embedded engines.

A server (``RAG_QDRANT_URL``), Qdrant Edge (the Rust engine in-process, default without a
URL), or qdrant-client's pure-Python local mode (``RAG_EMBEDDED_ENGINE=python``). An existing
pure-Python store is copied into Edge once on upgrade, vectors included.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from rag.settings import StoreSettings
from rag.store.client import QdrantAPI
from rag.store.edge import EdgeClient
from rag.store.schema import Collections, StoreError

log = logging.getLogger(__name__)
_BATCH = 256


def connect(settings: StoreSettings) -> QdrantAPI:
    s = settings
    if s.qdrant_url:
        key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
        return cast(QdrantAPI, QdrantClient(url=s.qdrant_url, api_key=key, timeout=30))
    s.qdrant_path.mkdir(parents=True, exist_ok=True)
    try:
        if s.embedded_engine == "edge":
            return cast(QdrantAPI, EdgeClient(s.qdrant_path))
        return cast(QdrantAPI, QdrantClient(path=str(s.qdrant_path)))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(
                f"the embedded Qdrant folder {s.qdrant_path} is open in another process "
                "(only one process may use it): send work to the running API with "
                "RAG_API_URL, or stop it first"
            ) from exc
        raise


def adopt_python_store(client: QdrantAPI, settings: StoreSettings, names: Collections) -> None:
    """Copy a collection written by the pure-Python engine (``<data>/qdrant``, the embedded
    engine before Edge) into Edge once, vectors included, so an upgrade keeps what was
    ingested instead of starting empty. The old folder is left as it was."""
    if not isinstance(client, EdgeClient):
        return
    old_path = settings.data_dir / "qdrant"
    if (
        client.collection_exists(names.passages)
        or not (old_path / "collection" / names.passages).is_dir()
    ):
        return
    old = QdrantClient(path=str(old_path))
    try:
        for name in names.all():  # leftovers of an interrupted adoption
            if client.collection_exists(f"{name}__adopting"):
                client.delete_collection(f"{name}__adopting")
        for name in names.all():
            if not old.collection_exists(name):
                continue
            config = old.get_collection(name).config
            client.create_collection(
                f"{name}__adopting",
                vectors_config=config.params.vectors or {},
                sparse_vectors_config=config.params.sparse_vectors or {},
                metadata=config.metadata,
            )
            copy_points(old, name, client, f"{name}__adopting")
        # Passages last: its presence is what marks the adoption as done.
        for name in (names.documents, names.parents, names.passages):
            if client.collection_exists(f"{name}__adopting"):
                client.rename_collection(f"{name}__adopting", name)
        log.warning(
            "copied the pure-Python store %s into the Edge store %s (%d passages); "
            "the old folder can be deleted",
            old_path,
            settings.qdrant_path,
            client.count(names.passages).count if client.collection_exists(names.passages) else 0,
        )
    finally:
        old.close()


def copy_points(source: Any, name: str, target: Any, target_name: str | None = None) -> None:
    """Every point of ``source``'s collection ``name`` (ids, vectors, payloads) into
    ``target``'s collection ``target_name`` (default: the same name), a batch at a time."""
    offset = None
    while True:
        points, offset = source.scroll(
            name, limit=_BATCH, offset=offset, with_payload=True, with_vectors=True
        )
        if points:
            target.upsert(
                target_name or name,
                [qm.PointStruct(id=p.id, vector=p.vector or {}, payload=p.payload) for p in points],
            )
        if offset is None:
            return
