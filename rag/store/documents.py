"""Documents in the store: records, the crash-safe replace, delete, and recovery.

The record in ``<c>_documents`` is the commit marker of a document's version: a search
returns only points whose ``content_hash`` is the one the record names, so a replace becomes
visible at one write and a crash never shows two versions.

A replace runs as: mark the record ``replacing`` (old hash kept), write the new points, commit
the record with the new hash (still ``replacing``), delete the old points, mark it
``committed``. ``recover`` finishes or rolls back every replace a crash left ``replacing``
(embedded: all of them, one process owns the store; a server: those older than
``RAG_STALE_REPLACE_SECONDS``, so live workers are left alone).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from qdrant_client import models as qm

from rag.access.acl import AccessList
from rag.access.scope import ReadScope
from rag.embedding.sparse import SparseVector
from rag.store.client import QdrantAPI
from rag.store.payloads import DocumentRecord, ParentPayload, PassagePayload
from rag.store.schema import Collections

log = logging.getLogger(__name__)
EVERYTHING = ReadScope.everything()  # the store's own maintenance: no access restriction
_BATCH = 256


@dataclass
class PassagePoint:
    id: str
    dense: list[float]
    sparse: SparseVector
    payload: PassagePayload


@dataclass
class ParentPoint:
    id: str
    payload: ParentPayload


class DocumentStore:
    def __init__(self, client: QdrantAPI, names: Collections, lock: threading.RLock) -> None:
        self.client, self._lock = client, lock
        self.passages, self.parents, self.documents = names.all()
        #: called with a document id whose parents changed in place or went (the parent cache)
        self.forget_cached: Callable[[str], None] = lambda _document_id: None

    def get_document(
        self, document_id: str, scope: ReadScope = EVERYTHING
    ) -> DocumentRecord | None:
        """The committed record (None while a first ingest is still being written, and None
        when ``scope`` may not read it: the access filter runs inside Qdrant)."""
        with self._lock:
            if scope.unrestricted:
                record = self._record(document_id)
            else:
                flt = qm.Filter(must=[qm.HasIdCondition(has_id=[document_id]), *scope.conditions()])
                points, _ = self.client.scroll(
                    self.documents, scroll_filter=flt, limit=1, with_payload=True
                )
                record = DocumentRecord.from_payload(points[0].payload) if points else None
        return record if record is not None and record.committed else None

    def list_documents(self, scope: ReadScope = EVERYTHING) -> list[DocumentRecord]:
        """Committed records ``scope`` may read (filtered inside Qdrant), by source."""
        records = [r for r in self._records(scope.to_qdrant()) if r.committed]
        return sorted(records, key=lambda r: r.source)

    def set_access(self, document_id: str, access: AccessList) -> DocumentRecord | None:
        """Change a committed document's collection and access list in place (no
        re-embedding); None when there is no such document.

        Searches filter on the passages' own payload, and each point is updated whole, so
        at every moment a passage is readable under its old list or its new one, never by
        anyone neither allows. The record (listings, ``GET /v1/documents``) goes last."""
        payload = access.to_payload()
        by_doc = qm.FilterSelector(
            filter=qm.Filter(
                must=[qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id))]
            )
        )
        with self._lock:
            record = self.get_document(document_id)
            if record is None:
                return None
            self.client.set_payload(self.passages, payload, points=by_doc, wait=True)
            self.client.set_payload(self.parents, payload, points=by_doc, wait=True)
            updated = replace(record, collection=access.collection, acl=access.tokens())
            self._put_record(updated)
        self.forget_cached(document_id)
        return updated

    def iter_parents(self) -> Iterator[ParentPoint]:
        """Every stored parent, in pages (benchmarks and exports; not a search)."""
        for point in self._scroll(self.parents, vectors=False):
            yield ParentPoint(str(point.id), ParentPayload.from_payload(point.payload))

    def iter_passages(self) -> Iterator[PassagePoint]:
        """Every stored passage with its dense and sparse vectors, in pages."""
        for point in self._scroll(self.passages, vectors=True):
            vectors = point.vector or {}
            sparse = vectors.get("bm25")
            yield PassagePoint(
                id=str(point.id),
                dense=list(vectors.get("dense", [])),
                sparse=SparseVector(
                    list(sparse.indices) if sparse else [], list(sparse.values) if sparse else []
                ),
                payload=PassagePayload.from_payload(point.payload),
            )

    def _records(self, flt: qm.Filter | None = None) -> Iterator[DocumentRecord]:
        for point in self._scroll(self.documents, vectors=False, flt=flt):
            yield DocumentRecord.from_payload(point.payload)

    def _scroll(
        self, collection: str, vectors: bool, flt: qm.Filter | None = None
    ) -> Iterator[Any]:
        offset = None
        while True:
            with self._lock:
                points, offset = self.client.scroll(
                    collection,
                    scroll_filter=flt,
                    limit=512,
                    offset=offset,
                    with_payload=True,
                    with_vectors=vectors,
                )
            yield from points
            if offset is None:
                break

    def count_passages(self) -> int:
        with self._lock:
            return self.client.count(self.passages, exact=True).count

    def replace_document(
        self, record: DocumentRecord, parents: list[ParentPoint], passages: list[PassagePoint]
    ) -> None:
        """Write the new version, commit it in the record, then drop the old version.

        New points have ids derived from the new content hash, so both versions coexist on
        disk for a moment, but searches follow the record: the old version until the commit
        write, the new one after it. Never neither, never both.
        """
        doc_id, content_hash = record.document_id, record.content_hash
        with self._lock:
            since = time.time()
            marker = self._record(doc_id) or DocumentRecord(doc_id, None, record.source)
            self._put_record(replace(marker, state="replacing", replacing_since=since))
            for batch in _batches(parents):
                self.client.upsert(
                    self.parents,
                    [
                        qm.PointStruct(id=p.id, vector={}, payload=p.payload.to_payload())
                        for p in batch
                    ],
                    wait=True,
                )
            for batch in _batches(passages):
                self.client.upsert(
                    self.passages,
                    [
                        qm.PointStruct(
                            id=p.id,
                            payload=p.payload.to_payload(),
                            vector={
                                "dense": p.dense,
                                "bm25": qm.SparseVector(
                                    indices=p.sparse.indices, values=p.sparse.values
                                ),
                            },
                        )
                        for p in batch
                    ],
                    wait=True,
                )
            committed = replace(record, ingested_at=time.time())
            self._put_record(replace(committed, state="replacing", replacing_since=since))
            self._delete_other_versions(doc_id, content_hash)
            self._put_record(replace(committed, state="committed", replacing_since=None))

    def delete_document(self, document_id: str) -> bool:
        """Remove a document's record first (it disappears from listings and searches at
        once), then its points."""
        with self._lock:
            existed = self.get_document(document_id) is not None
            self.client.delete(self.documents, qm.PointIdsList(points=[document_id]), wait=True)
            self._delete_other_versions(document_id, None)
        self.forget_cached(document_id)  # its cached parents' text goes too
        return existed

    def recover(self, older_than: float = 0.0) -> int:
        """Finish or roll back replaces interrupted by a crash; returns how many.

        A ``replacing`` record names the version to keep (the old one before the commit
        write, the new one after it): every other version's points go. A record that never
        had a committed version goes with them."""
        now = time.time()
        fixed = 0
        with self._lock:
            offset = None
            while True:
                points, offset = self.client.scroll(
                    self.documents,
                    limit=256,
                    offset=offset,
                    with_payload=True,
                    scroll_filter=qm.Filter(
                        must=[
                            qm.FieldCondition(key="state", match=qm.MatchValue(value="replacing"))
                        ]
                    ),
                )
                for point in points:
                    rec = DocumentRecord.from_payload(point.payload)
                    if now - (rec.replacing_since or 0.0) < older_than:
                        continue  # a live worker's replace (server mode)
                    self._delete_other_versions(rec.document_id, rec.content_hash)
                    if rec.committed:
                        self._put_record(replace(rec, state="committed", replacing_since=None))
                    else:
                        self.client.delete(
                            self.documents, qm.PointIdsList(points=[rec.document_id]), wait=True
                        )
                    fixed += 1
                if offset is None:
                    break
        if fixed:
            log.warning("finished or rolled back %d interrupted document replace(s)", fixed)
        return fixed

    def _record(self, document_id: str) -> DocumentRecord | None:
        points = self.client.retrieve(self.documents, [document_id], with_payload=True)
        return DocumentRecord.from_payload(points[0].payload) if points else None

    def _put_record(self, record: DocumentRecord) -> None:
        self.client.upsert(
            self.documents,
            [qm.PointStruct(id=record.document_id, vector={}, payload=record.to_payload())],
            wait=True,
        )

    def _delete_other_versions(self, document_id: str, keep_hash: str | None) -> None:
        """Delete the document's points except those of ``keep_hash`` (all when None)."""
        flt = qm.Filter(
            must=[qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id))],
            must_not=[qm.FieldCondition(key="content_hash", match=qm.MatchValue(value=keep_hash))]
            if keep_hash
            else None,
        )
        self.client.delete(self.passages, qm.FilterSelector(filter=flt), wait=True)
        self.client.delete(self.parents, qm.FilterSelector(filter=flt), wait=True)

    def committed_hashes(self, document_ids: Iterable[str]) -> dict[str, str]:
        """document id -> the content hash its record commits (documents without one are
        absent: never ingested, deleted, or a first ingest not yet committed)."""
        ids = sorted(set(document_ids))
        if not ids:
            return {}
        with self._lock:
            points = self.client.retrieve(self.documents, ids, with_payload=["content_hash"])
        return {
            str(p.id): (p.payload or {})["content_hash"]
            for p in points
            if (p.payload or {}).get("content_hash")
        }


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]
