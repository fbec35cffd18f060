"""Qdrant storage: schema, replace-by-document, and hybrid search grouped to parents.

Three collections share a prefix:

* ``<c>_passages``: one point per passage, a dense ``dense`` vector and a sparse ``bm25``
  vector (IDF applied by Qdrant), payload pointing at the parent;
* ``<c>_parents``: one vector-less point per parent chunk whose id equals the passages'
  ``parent_id``; parent texts are content-addressed, so a process-local cache of them can
  never serve a stale entry (a changed parent gets a new id);
* ``<c>_documents``: one vector-less record per document (hash, counts, time). The record is
  the commit marker: a search returns only points whose ``content_hash`` is the one the record
  names, so a replace becomes visible at one write and a crash never shows two versions.

A replace runs as: mark the record ``replacing`` (old hash kept), write the new points, commit
the record with the new hash (still ``replacing``), delete the old points, mark it
``committed``. A process that opens the store finishes or rolls back every replace left
``replacing`` by a crash (embedded: all of them, it is the only writer; a server: those older
than ``RAG_STALE_REPLACE_SECONDS``, so live workers are left alone).

The passages collection's metadata records the embedding model, its dimension and the sparse
scheme; opening it with another model is refused instead of mixing vector spaces.
The same code runs against a Qdrant server (``RAG_QDRANT_URL``) and two embedded engines:
Qdrant Edge (default; the Rust engine in-process, see ``rag.edge_client``) and qdrant-client's
pure-Python local mode. One difference: a server groups passages to parents natively
(``query_points_groups``); Edge has no group-by, and qdrant-client's local version scores and
copies *every* point in Python (it raises prefetch limits to the collection size). Embedded,
we therefore run the same query with bounded limits and group the ranked passages ourselves
as the server does (first ``limit`` groups in rank order, up to ``group_size`` hits each),
widening the window until enough parents are found.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from rag.documents import Hit, MatchedPassage
from rag.payloads import DocumentRecord, ParentPayload, PassagePayload
from rag.edge_client import EdgeClient
from rag.settings import Fusion, RetrievalMode, Settings
from rag.sparse import SPARSE_SCHEME, SparseVector

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 1 was dense-only; 2 adds the bm25 sparse vector
_BATCH = 256


class StoreError(RuntimeError):
    """The store cannot be used as configured; the message says what to do."""


class SchemaMismatch(StoreError):
    """The collection was built with another model or layout."""


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions applied inside Qdrant (to every branch of a hybrid query)."""

    document_ids: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    file_types: list[str] = field(default_factory=list)

    def to_qdrant(self) -> qm.Filter | None:
        must: list[qm.Condition] = []
        if self.document_ids:
            must.append(qm.FieldCondition(key="document_id",
                                          match=qm.MatchAny(any=self.document_ids)))
        if self.folders:
            must.append(qm.FieldCondition(key="folders", match=qm.MatchAny(
                any=[normalise_folder(f) for f in self.folders])))
        if self.file_types:
            must.append(qm.FieldCondition(key="file_type", match=qm.MatchAny(
                any=[t.lower().lstrip(".") for t in self.file_types])))
        return qm.Filter(must=must) if must else None


def normalise_folder(folder: str) -> str:
    return str(PurePosixPath(folder)).rstrip("/") or "/"


def folders_of(source: str) -> list[str]:
    """Every ancestor folder of a path: a keyword list that makes folder filters exact."""
    return [str(p) for p in PurePosixPath(source).parents]


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


class QdrantStore:
    """A Qdrant server (a URL) or an embedded engine (a folder), one code path for all."""

    def __init__(self, settings: Settings, model_name: str, dimension: int,
                 check: bool = True) -> None:
        self.settings = settings
        self.model_name = model_name
        self.dimension = dimension
        self.passages = f"{settings.collection}_passages"
        self.parents = f"{settings.collection}_parents"
        self.documents = f"{settings.collection}_documents"
        self.embedded = not settings.qdrant_url
        # The pure-Python local client has no internal locking, and Edge's facade keeps
        # per-collection state: one caller at a time.
        self._lock = threading.RLock()
        # Parent ids derive from (document, content hash, index): a cached payload can never
        # be stale, so searches skip re-reading (and, in local mode, deep-copying) hot parents.
        self._parent_cache: OrderedDict[str, ParentPayload] = OrderedDict()
        self._parent_cache_size = 4096
        self.client = self._connect()
        if isinstance(self.client, EdgeClient):
            self._adopt_python_store()
        if check:
            self.ensure_schema()
            self.recover(older_than=settings.stale_replace_seconds if settings.qdrant_url
                         else 0.0)

    @classmethod
    def unchecked(cls, settings: Settings, model_name: str, dimension: int) -> QdrantStore:
        """Open without validating the schema (to ``recreate()`` it)."""
        return cls(settings, model_name, dimension, check=False)

    # --- connection and schema ------------------------------------------------------------
    def _connect(self) -> Any:
        """A ``QdrantClient`` (server or pure-Python local) or the Edge facade, which answers
        the same calls (see ``rag.edge_client``)."""
        s = self.settings
        if s.qdrant_url:
            key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
            return QdrantClient(url=s.qdrant_url, api_key=key, timeout=30)
        s.qdrant_path.mkdir(parents=True, exist_ok=True)
        try:
            if s.embedded_engine == "edge":
                return EdgeClient(s.qdrant_path)
            return QdrantClient(path=str(s.qdrant_path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreError(
                    f"the embedded Qdrant folder {s.qdrant_path} is open in another process "
                    "(only one process may use it): send work to the running API with "
                    "RAG_API_URL, or stop it first"
                ) from exc
            raise

    def _adopt_python_store(self) -> None:
        """Copy a collection written by the pure-Python engine (``<data>/qdrant``, the
        embedded engine before Edge) into Edge once, vectors included, so an upgrade keeps
        what was ingested instead of starting empty. The old folder is left as it was."""
        old_path = self.settings.data_dir / "qdrant"
        names = (self.passages, self.parents, self.documents)
        if self.client.collection_exists(self.passages) or not (
                old_path / "collection" / self.passages).is_dir():
            return
        old = QdrantClient(path=str(old_path))
        try:
            for name in names:  # leftovers of an interrupted adoption
                if self.client.collection_exists(f"{name}__adopting"):
                    self.client.delete_collection(f"{name}__adopting")
            for name in names:
                if not old.collection_exists(name):
                    continue
                config = old.get_collection(name).config
                self.client.create_collection(
                    f"{name}__adopting", vectors_config=config.params.vectors or {},
                    sparse_vectors_config=config.params.sparse_vectors or {},
                    metadata=config.metadata)
                copy_points(old, name, self.client, f"{name}__adopting")
            # Passages last: its presence is what marks the adoption as done.
            for name in (self.documents, self.parents, self.passages):
                if self.client.collection_exists(f"{name}__adopting"):
                    self.client.rename_collection(f"{name}__adopting", name)
            log.warning("copied the pure-Python store %s into the Edge store %s (%d passages); "
                        "the old folder can be deleted", old_path, self.settings.qdrant_path,
                        self.client.count(self.passages).count
                        if self.client.collection_exists(self.passages) else 0)
        finally:
            old.close()

    def _metadata(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "embedding_model": self.model_name,
                "dimension": self.dimension, "sparse": SPARSE_SCHEME}

    def ensure_schema(self) -> None:
        with self._lock:
            if self.client.collection_exists(self.passages):
                self._check_schema()
            else:
                self.client.create_collection(
                    self.passages,
                    vectors_config={"dense": qm.VectorParams(size=self.dimension,
                                                             distance=qm.Distance.COSINE)},
                    sparse_vectors_config={"bm25": qm.SparseVectorParams(
                        modifier=qm.Modifier.IDF)},
                    shard_number=self.settings.qdrant_shards,
                    replication_factor=self.settings.qdrant_replicas,
                    metadata=self._metadata(),
                )
            for name in (self.parents, self.documents):
                if not self.client.collection_exists(name):
                    self.client.create_collection(
                        name, vectors_config={}, shard_number=self.settings.qdrant_shards,
                        replication_factor=self.settings.qdrant_replicas,
                    )
            if self.settings.qdrant_url or self.settings.embedded_engine == "edge":
                # qdrant-client's local mode has no payload indexes; a server and Edge do
                for collection, keys in (
                    (self.passages, ("document_id", "parent_id", "folders", "file_type",
                                     "content_hash")),
                    (self.parents, ("document_id", "content_hash")),
                    (self.documents, ("source", "state")),
                ):
                    for key in keys:
                        self.client.create_payload_index(collection, key,
                                                         qm.PayloadSchemaType.KEYWORD)

    def _check_schema(self) -> None:
        config = self.client.get_collection(self.passages).config
        meta = config.metadata or {}
        has_sparse = bool(config.params.sparse_vectors and "bm25" in config.params.sparse_vectors)
        if not has_sparse or meta.get("schema_version", 1) < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"collection '{self.passages}' was created by an older version without BM25 "
                "sparse vectors; rebuild it with `python -m ingest --recreate PATH` "
                "(drops and re-ingests), or set RAG_COLLECTION to a new name"
            )
        found = (meta.get("embedding_model"), meta.get("dimension"), meta.get("sparse"))
        wanted = (self.model_name, self.dimension, SPARSE_SCHEME)
        if found != wanted:
            raise SchemaMismatch(
                f"collection '{self.passages}' holds vectors of model {found[0]!r} "
                f"(dim {found[1]}, sparse {found[2]!r}) but the service is configured for "
                f"{wanted[0]!r} (dim {wanted[1]}, sparse {wanted[2]!r}); use another "
                "RAG_COLLECTION or re-ingest with --recreate"
            )

    def recreate(self) -> None:
        """Drop every collection of this prefix and build the schema again."""
        with self._lock:
            for name in (self.passages, self.parents, self.documents):
                if self.client.collection_exists(name):
                    self.client.delete_collection(name)
            self.ensure_schema()

    def close(self) -> None:
        with self._lock:
            self.client.close()

    # --- documents -------------------------------------------------------------------------
    def get_document(self, document_id: str) -> DocumentRecord | None:
        """The committed record (None while a first ingest is still being written)."""
        with self._lock:
            record = self._record(document_id)
        return record if record is not None and record.committed else None

    def list_documents(self) -> list[DocumentRecord]:
        records: list[DocumentRecord] = []
        offset = None
        with self._lock:
            while True:
                points, offset = self.client.scroll(self.documents, limit=512, offset=offset,
                                                    with_payload=True)
                records.extend(r for r in (DocumentRecord.from_payload(p.payload)
                                           for p in points) if r.committed)
                if offset is None:
                    break
        return sorted(records, key=lambda r: r.source)

    def count_passages(self) -> int:
        with self._lock:
            return self.client.count(self.passages, exact=True).count

    def replace_document(self, record: DocumentRecord, parents: list[ParentPoint],
                         passages: list[PassagePoint]) -> None:
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
                self.client.upsert(self.parents, [
                    qm.PointStruct(id=p.id, vector={}, payload=p.payload.to_payload())
                    for p in batch], wait=True)
            for batch in _batches(passages):
                self.client.upsert(self.passages, [
                    qm.PointStruct(id=p.id, payload=p.payload.to_payload(), vector={
                        "dense": p.dense,
                        "bm25": qm.SparseVector(indices=p.sparse.indices,
                                                values=p.sparse.values)})
                    for p in batch
                ], wait=True)
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
                    self.documents, limit=256, offset=offset, with_payload=True,
                    scroll_filter=qm.Filter(must=[qm.FieldCondition(
                        key="state", match=qm.MatchValue(value="replacing"))]))
                for point in points:
                    rec = DocumentRecord.from_payload(point.payload)
                    if now - (rec.replacing_since or 0.0) < older_than:
                        continue  # a live worker's replace (server mode)
                    self._delete_other_versions(rec.document_id, rec.content_hash)
                    if rec.committed:
                        self._put_record(replace(rec, state="committed", replacing_since=None))
                    else:
                        self.client.delete(self.documents,
                                           qm.PointIdsList(points=[rec.document_id]), wait=True)
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
        self.client.upsert(self.documents, [qm.PointStruct(
            id=record.document_id, vector={}, payload=record.to_payload())], wait=True)

    def _delete_other_versions(self, document_id: str, keep_hash: str | None) -> None:
        """Delete the document's points except those of ``keep_hash`` (all when None)."""
        flt = qm.Filter(
            must=[qm.FieldCondition(key="document_id", match=qm.MatchValue(value=document_id))],
            must_not=[qm.FieldCondition(key="content_hash",
                                        match=qm.MatchValue(value=keep_hash))]
            if keep_hash else None)
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
        return {str(p.id): (p.payload or {})["content_hash"] for p in points
                if (p.payload or {}).get("content_hash")}

    # --- search ----------------------------------------------------------------------------
    def search(self, dense: list[float] | None, sparse: SparseVector | None, *, limit: int,
               filters: SearchFilters | None = None, mode: RetrievalMode | None = None,
               fusion: Fusion | None = None, group_size: int | None = None) -> list[Hit]:
        """Top ``limit`` parents by their best passages, one Qdrant query, filters in both
        branches; only committed versions (see the module notes)."""
        s = self.settings
        mode = mode or s.retrieval_mode
        flt = filters.to_qdrant() if filters else None
        sparse_q = (qm.SparseVector(indices=sparse.indices, values=sparse.values)
                    if sparse is not None else None)
        if mode is RetrievalMode.hybrid and (dense is None or sparse_q is None):
            raise ValueError("hybrid search needs both a dense and a sparse query")
        if mode is RetrievalMode.sparse and sparse_q is not None and not sparse_q.indices:
            return []  # a query of stop words only matches nothing lexically
        size = group_size or s.passages_per_parent
        want = limit
        for _ in range(4):
            depth = max(s.prefetch_limit, want * size * 2)  # per branch, and the window
            kwargs = self._query_kwargs(mode, dense, sparse_q, flt, depth, fusion or s.fusion)
            with self._lock:
                if self.embedded:
                    groups = self._groups_embedded(kwargs, flt, want, size, depth)
                else:
                    groups = self.client.query_points_groups(
                        self.passages, group_by="parent_id", limit=want, group_size=size,
                        query_filter=flt, with_payload=["start", "end", "passage_index"],
                        **kwargs,
                    ).groups
                parents = self._parents([str(g.id) for g in groups])
            committed = self.committed_hashes(p.document_id for p in parents.values())
            valid = [g for g in groups if (p := parents.get(str(g.id))) is not None
                     and committed.get(p.document_id) == p.content_hash]
            hidden = len(groups) - len(valid)
            # Done unless uncommitted versions took places that committed ones could fill.
            if not hidden or len(valid) >= limit or len(groups) < want:
                break
            want += 2 * hidden
        return list(_hits(valid[:limit], parents))

    @staticmethod
    def _query_kwargs(mode: RetrievalMode, dense: list[float] | None,
                      sparse_q: qm.SparseVector | None, flt: qm.Filter | None, depth: int,
                      fusion: Fusion) -> dict[str, Any]:
        if mode is RetrievalMode.hybrid:
            return {"prefetch": [
                qm.Prefetch(query=dense, using="dense", limit=depth, filter=flt),
                qm.Prefetch(query=sparse_q, using="bm25", limit=depth, filter=flt),
            ], "query": qm.FusionQuery(
                fusion=qm.Fusion.RRF if fusion is Fusion.rrf else qm.Fusion.DBSF)}
        if mode is RetrievalMode.dense:
            return {"query": dense, "using": "dense"}
        return {"query": sparse_q, "using": "bm25"}

    def _groups_embedded(self, kwargs: dict[str, Any], flt: qm.Filter | None, limit: int,
                         size: int, depth: int) -> list[qm.PointGroup]:
        """Grouping over a bounded ranked window (see the module notes).

        The same parents in the same order as the server: the window widens while too few
        parents appear. One deliberate difference: a parent's hits are those inside the
        window, so it may list fewer than ``size`` passages where the server would run a
        second query to fill it. Those extra passages rank below every passage in the window,
        so they would come last in excerpt packing anyway, and a second query costs a second
        scan (a full one in the pure-Python engine).
        """
        total: int | None = None
        while True:
            points = self._ranked(kwargs, flt, depth)
            groups = group_points(points, limit, size)
            # Fewer than ``depth`` points means every branch is exhausted: nothing more exists.
            if len(groups) >= limit or len(points) < depth:
                break
            if total is None:
                total = self.client.count(self.passages, count_filter=flt, exact=True).count
            if depth >= total:
                break
            depth *= 4
        return groups

    def _ranked(self, kwargs: dict[str, Any], flt: qm.Filter | None,
                depth: int) -> list[Any]:
        """The query's top ``depth`` passages (fused ones in hybrid mode, where each branch
        also contributes its top ``depth``)."""
        query = dict(kwargs)
        if "prefetch" in query:
            query["prefetch"] = [p.model_copy(update={"limit": depth})
                                 for p in query["prefetch"]]
        return self.client.query_points(
            self.passages, query_filter=flt, limit=depth,
            with_payload=["start", "end", "passage_index", "parent_id"], **query,
        ).points

    def _parents(self, ids: list[str]) -> dict[str, ParentPayload]:
        """Parent payloads by id, from the cache or one batched read."""
        found = {i: self._parent_cache[i] for i in ids if i in self._parent_cache}
        missing = [i for i in ids if i not in found]
        if missing:
            for point in self.client.retrieve(self.parents, missing, with_payload=True):
                found[str(point.id)] = ParentPayload.from_payload(point.payload)
                self._parent_cache[str(point.id)] = found[str(point.id)]
        for i in found:
            self._parent_cache.move_to_end(i)
        while len(self._parent_cache) > self._parent_cache_size:
            self._parent_cache.popitem(last=False)
        return found


def copy_points(source: Any, name: str, target: Any, target_name: str | None = None) -> None:
    """Every point of ``source``'s collection ``name`` (ids, vectors, payloads) into
    ``target``'s collection ``target_name`` (default: the same name), a batch at a time."""
    offset = None
    while True:
        points, offset = source.scroll(name, limit=_BATCH, offset=offset, with_payload=True,
                                       with_vectors=True)
        if points:
            target.upsert(target_name or name, [
                qm.PointStruct(id=p.id, vector=p.vector or {}, payload=p.payload)
                for p in points])
        if offset is None:
            return


def group_points(points: Iterable[Any], limit: int,
                 size: int) -> list[qm.PointGroup]:
    """Group ranked passages by parent as Qdrant does: groups in order of their best hit."""
    groups: OrderedDict[str, qm.PointGroup] = OrderedDict()
    for point in points:
        parent = (point.payload or {}).get("parent_id")
        if parent is None:
            continue
        group = groups.get(parent)
        if group is None:
            if len(groups) >= limit:
                continue
            group = groups[parent] = qm.PointGroup(id=parent, hits=[])
        if len(group.hits) < size:
            group.hits.append(point)
    return list(groups.values())


def _hits(groups: Iterable[qm.PointGroup], parents: dict[str, ParentPayload]) -> Iterator[Hit]:
    for group in groups:
        p = parents.get(str(group.id))
        if p is None or not group.hits:
            continue  # parent replaced between the two reads; its new version will match
        yield Hit(
            parent_id=str(group.id), document_id=p.document_id, source=p.source,
            title=p.title, file_type=p.file_type, pages=list(p.pages), heading=p.heading,
            text=p.text, start=p.start, end=p.end, tokens=p.tokens,
            score=float(group.hits[0].score), parent_index=p.parent_index,
            passages=[MatchedPassage((h.payload or {})["start"], (h.payload or {})["end"],
                                     float(h.score)) for h in group.hits],
        )


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), _BATCH):
        yield items[i:i + _BATCH]
