"""The embedded store engine: Qdrant Edge (Qdrant's Rust engine in-process) behind the small
part of ``QdrantClient``'s interface that the store uses.

Why not qdrant-client's own embedded mode: it is a pure-Python re-implementation that scores
every point in Python on every query. Measured here on the SQuAD passages, a sparse (BM25)
branch costs ~60 us per stored passage, so a hybrid search takes ~85 ms at 858 passages and
seconds at 50k. ``qdrant-edge-py`` is the real engine (segments, write-ahead log, payload
indexes, sparse vectors with the IDF modifier, prefetch + RRF/DBSF fusion) as a library, so an
embedded deployment runs the very search code a Qdrant server runs.

Edge has its own API: one shard per folder, no named collections, no group-by and no
collection metadata. This module maps the calls ``QdrantStore`` and ``FileClaims`` make
(``qdrant_client.models`` in, ``qdrant_client.models`` out) onto one shard per collection,
so the store keeps a single code path for every engine. A call it cannot map raises
``NotImplementedError`` instead of silently doing something else.

Layout: ``<path>/<collection>/shard`` (Edge's folder) and ``<path>/<collection>/collection.json``
(vector layout and metadata). A lock file makes a second process fail at once with the same
message as qdrant-client's embedded mode.

Over 350 lines on purpose: one adapter for one foreign API (calls, filters, queries and
points translated both ways); its halves only make sense side by side.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import qdrant_edge as E
from qdrant_client import models as qm

#: Qdrant's default RRF constant (server and qdrant-client use k=2).
RRF_K = 2
#: Edge refuses a shard without any vector; vector-less collections get this unused one.
_PLACEHOLDER = "_none"
_DISTANCES = {
    qm.Distance.COSINE: E.Distance.Cosine,
    qm.Distance.DOT: E.Distance.Dot,
    qm.Distance.EUCLID: E.Distance.Euclid,
    qm.Distance.MANHATTAN: E.Distance.Manhattan,
}


@dataclass(slots=True)
class ScoredPoint:
    """The fields of ``qdrant_client.models.ScoredPoint`` that readers use, without pydantic:
    building hundreds of pydantic models per search cost twice the engine's query time."""

    id: str
    version: int
    score: float
    payload: dict[str, Any] | None
    vector: Any = None


class EdgeClient:
    """One Edge shard per collection under ``path``; used by one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / ".lock", "a+")  # noqa: SIM115 (held while open)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise RuntimeError(
                f"Storage folder {self.path} is already accessed by another "
                "instance of the embedded engine"
            ) from exc
        self._shards: dict[str, E.EdgeShard] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        for meta in sorted(self.path.glob("*/collection.json")):
            name = meta.parent.name
            self._configs[name] = json.loads(meta.read_text())
            self._shards[name] = E.EdgeShard.load(str(meta.parent / "shard"))

    # --- collections -----------------------------------------------------------------------
    def collection_exists(self, collection_name: str) -> bool:
        return collection_name in self._shards

    def create_collection(
        self,
        collection_name: str,
        vectors_config: dict[str, qm.VectorParams] | None = None,
        sparse_vectors_config: dict[str, qm.SparseVectorParams] | None = None,
        metadata: dict[str, Any] | None = None,
        **_: Any,
    ) -> bool:
        """Shards and replicas are server concepts; they are accepted and ignored here."""
        if collection_name in self._shards:
            raise ValueError(f"Collection {collection_name} already exists")
        dense = {
            name: {"size": p.size, "distance": qm.Distance(p.distance).value}
            for name, p in (vectors_config or {}).items()
        }
        sparse = {
            name: {"modifier": qm.Modifier(p.modifier).value if p and p.modifier else None}
            for name, p in (sparse_vectors_config or {}).items()
        }
        config = {"vectors": dense, "sparse_vectors": sparse, "metadata": metadata or {}}
        folder = self.path / collection_name
        if folder.exists():
            shutil.rmtree(folder)  # a half-created collection (no collection.json)
        folder.mkdir(parents=True)
        self._shards[collection_name] = E.EdgeShard.create(
            str(folder / "shard"), _edge_config(config)
        )
        tmp = folder / "collection.json.tmp"
        tmp.write_text(json.dumps(config))
        os.replace(tmp, folder / "collection.json")  # the collection exists once this lands
        self._configs[collection_name] = config
        return True

    def delete_collection(self, collection_name: str) -> bool:
        shard = self._shards.pop(collection_name, None)
        self._configs.pop(collection_name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.path / collection_name, ignore_errors=True)
        return shard is not None

    def rename_collection(self, old_name: str, new_name: str) -> None:
        """Atomic on one filesystem (a folder rename); used to publish a finished copy."""
        if new_name in self._shards:
            raise ValueError(f"Collection {new_name} already exists")
        self._shard(old_name).close()
        del self._shards[old_name]
        os.replace(self.path / old_name, self.path / new_name)
        self._configs[new_name] = self._configs.pop(old_name)
        self._shards[new_name] = E.EdgeShard.load(str(self.path / new_name / "shard"))

    def get_collection(self, collection_name: str) -> SimpleNamespace:
        """Just the fields the store's schema check reads (``config.metadata``, vectors)."""
        config = self._configs[collection_name]
        sparse = {
            n: qm.SparseVectorParams(modifier=qm.Modifier(v["modifier"]) if v["modifier"] else None)
            for n, v in config["sparse_vectors"].items()
        }
        dense = {
            n: qm.VectorParams(size=v["size"], distance=qm.Distance(v["distance"]))
            for n, v in config["vectors"].items()
        }
        params = SimpleNamespace(vectors=dense, sparse_vectors=sparse or None)
        return SimpleNamespace(config=SimpleNamespace(metadata=config["metadata"], params=params))

    def create_payload_index(
        self, collection_name: str, field_name: str, field_schema: Any = None, **_: Any
    ) -> None:
        if isinstance(field_schema, qm.KeywordIndexParams):
            schema: Any = E.KeywordIndexParams(is_tenant=field_schema.is_tenant)
        elif field_schema in (None, qm.PayloadSchemaType.KEYWORD, "keyword"):
            schema = E.PayloadSchemaType.Keyword
        else:
            raise NotImplementedError(f"payload index type {field_schema!r}")
        self._shard(collection_name).update(
            E.UpdateOperation.create_field_index(field_name, schema)
        )

    # --- points ----------------------------------------------------------------------------
    def upsert(
        self,
        collection_name: str,
        points: list[qm.PointStruct],
        wait: bool = True,
        update_filter: qm.Filter | None = None,
        **_: Any,
    ) -> None:
        """Edge applies updates synchronously (``wait`` is always true) through its WAL."""
        edge_points = [E.Point(str(p.id), _vectors_in(p.vector), p.payload or {}) for p in points]
        self._shard(collection_name).update(
            E.UpdateOperation.upsert_points(edge_points, condition=_filter(update_filter))
        )

    def delete(
        self, collection_name: str, points_selector: Any, wait: bool = True, **_: Any
    ) -> None:
        shard = self._shard(collection_name)
        if isinstance(points_selector, qm.FilterSelector):
            flt = _filter(points_selector.filter)
            assert flt is not None  # a FilterSelector always carries its filter
            shard.update(E.UpdateOperation.delete_points_by_filter(flt))
        elif isinstance(points_selector, qm.PointIdsList):
            shard.update(E.UpdateOperation.delete_points([str(i) for i in points_selector.points]))
        elif isinstance(points_selector, list):
            shard.update(E.UpdateOperation.delete_points([str(i) for i in points_selector]))
        else:
            raise NotImplementedError(f"delete selector {type(points_selector).__name__}")

    def set_payload(
        self,
        collection_name: str,
        payload: dict[str, Any],
        points: Any,
        wait: bool = True,
        **_: Any,
    ) -> None:
        """Merge ``payload`` into the selected points (ids, or a ``FilterSelector``)."""
        shard = self._shard(collection_name)
        if isinstance(points, qm.FilterSelector):
            flt = _filter(points.filter)
            assert flt is not None
            shard.update(E.UpdateOperation.set_payload_by_filter(flt, payload))
        elif isinstance(points, qm.PointIdsList):
            shard.update(E.UpdateOperation.set_payload([str(i) for i in points.points], payload))
        elif isinstance(points, list):
            shard.update(E.UpdateOperation.set_payload([str(i) for i in points], payload))
        else:
            raise NotImplementedError(f"set_payload selector {type(points).__name__}")

    def retrieve(
        self,
        collection_name: str,
        ids: list[Any],
        with_payload: Any = True,
        with_vectors: Any = False,
        **_: Any,
    ) -> list[qm.Record]:
        records = self._shard(collection_name).retrieve(
            [str(i) for i in ids], with_payload, with_vectors
        )
        return [_record(r) for r in records]

    def scroll(
        self,
        collection_name: str,
        scroll_filter: qm.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: Any = True,
        with_vectors: Any = False,
        **_: Any,
    ) -> tuple[list[qm.Record], Any]:
        records, next_offset = self._shard(collection_name).scroll(
            E.ScrollRequest(
                offset=str(offset) if offset is not None else None,
                limit=limit,
                filter=_filter(scroll_filter),
                with_payload=with_payload,
                with_vector=with_vectors,
            )
        )
        return [_record(r) for r in records], (
            str(next_offset) if next_offset is not None else None
        )

    def count(
        self,
        collection_name: str,
        count_filter: qm.Filter | None = None,
        exact: bool = True,
        **_: Any,
    ) -> qm.CountResult:
        return qm.CountResult(
            count=self._shard(collection_name).count(
                E.CountRequest(exact=True, filter=_filter(count_filter))
            )
        )

    def query_points(
        self,
        collection_name: str,
        query: Any = None,
        using: str | None = None,
        prefetch: list[qm.Prefetch] | qm.Prefetch | None = None,
        query_filter: qm.Filter | None = None,
        limit: int = 10,
        with_payload: Any = True,
        with_vectors: Any = False,
        **_: Any,
    ) -> SimpleNamespace:
        """``.points`` with the attributes of qdrant-client's ``ScoredPoint``."""
        prefetches = [prefetch] if isinstance(prefetch, qm.Prefetch) else (prefetch or [])
        request = E.QueryRequest(
            limit=limit,
            query=_query(query, using),
            prefetches=[_prefetch(p) for p in prefetches] or None,
            filter=_filter(query_filter),
            with_payload=with_payload,
            with_vector=with_vectors,
        )
        points = self._shard(collection_name).query(request)
        return SimpleNamespace(
            points=[
                ScoredPoint(str(p.id), p.version, p.score, p.payload, _vectors_out(p.vector))
                for p in points
            ]
        )

    def optimize(self, collection_name: str) -> None:
        """Build the collection's indexes (HNSW) now; blocking. A server does this itself
        in the background; Edge only when asked."""
        self._shard(collection_name).optimize()

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _shard(self, collection_name: str) -> E.EdgeShard:
        try:
            return self._shards[collection_name]
        except KeyError:
            raise ValueError(f"Collection {collection_name} not found") from None


# --- conversions ----------------------------------------------------------------------------
def _edge_config(config: dict[str, Any]) -> E.EdgeConfig:
    dense = {
        n: E.EdgeVectorParams(size=v["size"], distance=_DISTANCES[qm.Distance(v["distance"])])
        for n, v in config["vectors"].items()
    }
    sparse = {
        n: E.EdgeSparseVectorParams(modifier=E.Modifier.Idf if v["modifier"] == "idf" else None)
        for n, v in config["sparse_vectors"].items()
    }
    if not dense and not sparse:
        sparse = {_PLACEHOLDER: E.EdgeSparseVectorParams()}
    return E.EdgeConfig(vectors=dense or None, sparse_vectors=sparse or None)


def _vectors_in(vector: Any) -> dict[str, Any]:
    if not vector:
        return {}
    if not isinstance(vector, dict):
        raise NotImplementedError("only named vectors are supported")
    out: dict[str, Any] = {}
    for name, value in vector.items():
        if isinstance(value, qm.SparseVector):
            out[name] = E.SparseVector(indices=list(value.indices), values=list(value.values))
        else:
            out[name] = [float(x) for x in value]
    return out


def _vectors_out(vector: Any) -> Any:
    if not vector:
        return None
    return {
        name: qm.SparseVector(indices=list(v.indices), values=list(v.values))
        if isinstance(v, E.SparseVector)
        else list(v)
        for name, v in vector.items()
    }


def _record(r: Any) -> qm.Record:
    return qm.Record.model_construct(
        id=str(r.id),
        payload=r.payload,
        vector=_vectors_out(r.vector),
        shard_key=None,
        order_value=None,
    )


def _query(query: Any, using: str | None) -> Any:
    if query is None:
        return None
    if isinstance(query, qm.FusionQuery):
        if query.fusion == qm.Fusion.RRF:
            return E.Fusion.Rrf(k=RRF_K)
        if query.fusion == qm.Fusion.DBSF:
            return E.Fusion.Dbsf()
        raise NotImplementedError(f"fusion {query.fusion!r}")
    if isinstance(query, qm.SparseVector):
        order = sorted(range(len(query.indices)), key=query.indices.__getitem__)
        sparse = E.SparseVector(
            indices=[query.indices[i] for i in order], values=[query.values[i] for i in order]
        )
        return E.Query.Nearest(sparse, using=using)
    if isinstance(query, list) and all(isinstance(x, (int, float)) for x in query):
        return E.Query.Nearest([float(x) for x in query], using=using)
    raise NotImplementedError(f"query of type {type(query).__name__}")


def _prefetch(p: qm.Prefetch) -> E.Prefetch:
    if p.prefetch:
        raise NotImplementedError("nested prefetch")
    return E.Prefetch(
        limit=p.limit or 10,
        query=_query(p.query, p.using),
        filter=_filter(p.filter),
        score_threshold=p.score_threshold,
    )


def _filter(f: qm.Filter | None) -> E.Filter | None:
    if f is None:
        return None

    def many(conds: Any) -> list[Any] | None:
        if conds is None:
            return None
        return [_condition(c) for c in (conds if isinstance(conds, list) else [conds])]

    if f.min_should is not None:
        raise NotImplementedError("min_should")
    return E.Filter(must=many(f.must), should=many(f.should), must_not=many(f.must_not))


def _condition(c: Any) -> Any:
    if isinstance(c, qm.Filter):
        return _filter(c)
    if isinstance(c, qm.HasIdCondition):
        return E.HasIdCondition({str(i) for i in c.has_id})
    if isinstance(c, qm.FieldCondition):
        if c.match is not None and c.range is None:
            if isinstance(c.match, qm.MatchValue):
                return E.FieldCondition(key=c.key, match=E.MatchValue(c.match.value))
            if isinstance(c.match, qm.MatchAny):
                return E.FieldCondition(key=c.key, match=E.MatchAny(list(c.match.any)))  # type: ignore[arg-type]
        if c.range is not None and c.match is None and isinstance(c.range, qm.Range):
            r = c.range
            return E.FieldCondition(
                key=c.key, range=E.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
            )
    raise NotImplementedError(f"filter condition {c!r}")
