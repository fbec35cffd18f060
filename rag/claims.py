"""Leases on files, so several workers can share one folder without double work.

A claim is a vector-less point in ``<c>_claims`` keyed by the file's document id. Taking it
is one conditional upsert (Qdrant's ``update_filter``): it inserts when no claim exists and
overwrites only a claim that expired or that we already hold; then we read the owner back.
Qdrant applies updates to a point in order, so exactly one worker wins. A worker that dies
simply lets its lease expire; a finished file's claim is released at once.
"""

from __future__ import annotations

import socket
import time
import uuid

from qdrant_client import models as qm

from rag.settings import Settings
from rag.store import QdrantStore


class FileClaims:
    def __init__(self, store: QdrantStore, ttl_seconds: float = 600.0,
                 worker_id: str | None = None) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.collection = f"{store.settings.collection}_claims"
        with store.session() as client:
            if not client.collection_exists(self.collection):
                client.create_collection(self.collection, vectors_config={})

    def acquire(self, document_id: str) -> bool:
        now = time.time()
        mine_or_expired = qm.Filter(should=[
            qm.FieldCondition(key="expires_at", range=qm.Range(lt=now)),
            qm.FieldCondition(key="owner", match=qm.MatchValue(value=self.worker_id)),
        ])
        with self.store.session() as client:
            client.upsert(self.collection, [qm.PointStruct(
                id=document_id, vector={},
                payload={"owner": self.worker_id, "expires_at": now + self.ttl})],
                update_filter=mine_or_expired, wait=True)
            points = client.retrieve(self.collection, [document_id])
        return bool(points) and (points[0].payload or {}).get("owner") == self.worker_id

    def release(self, document_id: str) -> None:
        mine = qm.Filter(must=[qm.FieldCondition(key="owner",
                                                 match=qm.MatchValue(value=self.worker_id))])
        with self.store.session() as client:
            points = client.retrieve(self.collection, [document_id])
            if points and (points[0].payload or {}).get("owner") == self.worker_id:
                client.delete(self.collection, qm.FilterSelector(filter=qm.Filter(
                    must=[qm.HasIdCondition(has_id=[document_id])] + list(mine.must or []))),
                    wait=True)


def claims_for(settings: Settings, store: QdrantStore) -> FileClaims | None:
    """Leases when several processes share the store (a Qdrant server); none embedded, where
    one process owns the store."""
    return FileClaims(store) if settings.qdrant_url else None
