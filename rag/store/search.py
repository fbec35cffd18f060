"""Hybrid search grouped to parents: the query, the grouping, the parent cache, filters.

A server groups passages to parents natively (``query_points_groups``); Edge has no
group-by, and qdrant-client's local version scores and copies *every* point in Python (it
raises prefetch limits to the collection size). Embedded, we therefore run the same query
with bounded limits and group the ranked passages ourselves as the server does (first
``limit`` groups in rank order, up to ``group_size`` hits each), widening the window until
enough parents are found (unless the caller asks for the first window only: ``widen``
False, the follow-up hop's, which needs a few new parents, not ``limit`` of them). Only
committed versions are returned (``committed`` tells, see ``rag.store.documents``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from qdrant_client import models as qm

from rag.access.scope import ReadScope
from rag.documents import Hit, MatchedPassage
from rag.embedding.sparse import SparseVector
from rag.settings import Fusion, RetrievalMode, RetrievalSettings
from rag.store.client import QdrantAPI
from rag.store.payloads import ParentPayload
from rag.store.schema import Collections


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions applied inside Qdrant (to every branch of a hybrid query): a request's
    own choices, and what its principal may read (``scope``, ``rag.access.scope``: the
    answer path always sets it, see ``within``)."""

    document_ids: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    file_types: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    scope: ReadScope | None = None

    @classmethod
    def within(cls, filters: SearchFilters | None, scope: ReadScope) -> SearchFilters:
        """``filters`` restricted to what ``scope`` may read (its collections narrowed by
        the request's own ``collections``)."""
        base = filters or cls()
        return replace(base, scope=scope.narrowed(tuple(base.collections)))

    def to_qdrant(self) -> qm.Filter | None:
        must: list[qm.Condition] = []
        if self.scope is not None:
            must.extend(self.scope.conditions())
        elif self.collections:
            must.append(
                qm.FieldCondition(key="collection", match=qm.MatchAny(any=self.collections))
            )
        if self.document_ids:
            must.append(
                qm.FieldCondition(key="document_id", match=qm.MatchAny(any=self.document_ids))
            )
        if self.folders:
            must.append(
                qm.FieldCondition(
                    key="folders",
                    match=qm.MatchAny(any=[normalise_folder(f) for f in self.folders]),
                )
            )
        if self.file_types:
            must.append(
                qm.FieldCondition(
                    key="file_type",
                    match=qm.MatchAny(any=[t.lower().lstrip(".") for t in self.file_types]),
                )
            )
        return qm.Filter(must=must) if must else None


def normalise_folder(folder: str) -> str:
    return str(PurePosixPath(folder)).rstrip("/") or "/"


def folders_of(source: str) -> list[str]:
    """Every ancestor folder of a path: a keyword list that makes folder filters exact."""
    return [str(p) for p in PurePosixPath(source).parents]


class PassageSearch:
    def __init__(
        self,
        client: QdrantAPI,
        names: Collections,
        settings: RetrievalSettings,
        lock: threading.RLock,
        committed: Callable[[Iterable[str]], dict[str, str]],
        embedded: bool,
    ) -> None:
        self.client, self.settings, self._lock = client, settings, lock
        self.passages, self.parents = names.passages, names.parents
        self.embedded = embedded
        self.committed_hashes = committed
        # Parent ids derive from (document, content hash, index): a cached payload can never
        # be stale, so searches skip re-reading (and, in local mode, deep-copying) hot parents.
        self._parent_cache: OrderedDict[str, ParentPayload] = OrderedDict()
        self._parent_cache_size = 4096

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
        widen: bool = True,
    ) -> list[Hit]:
        """Top ``limit`` parents by their best passages, one Qdrant query, filters in both
        branches; only committed versions (see the module notes). ``widen`` False (embedded
        engines; a server's group-by always looks for ``limit``): the parents of the first
        window, however few, deepened only to make up for uncommitted versions it held."""
        s = self.settings
        mode = mode or s.retrieval_mode
        flt = filters.to_qdrant() if filters else None
        sparse_q = (
            qm.SparseVector(indices=sparse.indices, values=sparse.values)
            if sparse is not None
            else None
        )
        if mode is RetrievalMode.hybrid and (dense is None or sparse_q is None):
            raise ValueError("hybrid search needs both a dense and a sparse query")
        if mode is RetrievalMode.sparse and sparse_q is not None and not sparse_q.indices:
            return []  # a query of stop words only matches nothing lexically
        size = group_size or s.passages_per_parent
        want = limit
        for _ in range(4):
            # Per branch, and the window grouped (widened below when too few parents).
            depth = max(s.prefetch_limit, round(want * size * s.search_window))
            kwargs = self._query_kwargs(mode, dense, sparse_q, flt, depth, fusion or s.fusion)
            with self._lock:
                if self.embedded:
                    groups = self._groups_embedded(kwargs, flt, want, size, depth, widen)
                else:
                    groups = self.client.query_points_groups(
                        self.passages,
                        group_by="parent_id",
                        limit=want,
                        group_size=size,
                        query_filter=flt,
                        with_payload=["start", "end", "passage_index"],
                        **kwargs,
                    ).groups
                parents = self._parents([str(g.id) for g in groups])
            current = self._committed(parents)
            valid = [g for g in groups if str(g.id) in current]
            hidden = len(groups) - len(valid)
            # Done unless uncommitted versions took places that committed ones could fill
            # (fewer groups than wanted: nothing more exists, when the window was widened).
            if not hidden or len(valid) >= limit or (widen and len(groups) < want):
                break
            want += 2 * hidden
        return list(_hits(valid[:limit], parents))

    @staticmethod
    def _query_kwargs(
        mode: RetrievalMode,
        dense: list[float] | None,
        sparse_q: qm.SparseVector | None,
        flt: qm.Filter | None,
        depth: int,
        fusion: Fusion,
    ) -> dict[str, Any]:
        if mode is RetrievalMode.hybrid:
            return {
                "prefetch": [
                    qm.Prefetch(query=dense, using="dense", limit=depth, filter=flt),
                    qm.Prefetch(query=sparse_q, using="bm25", limit=depth, filter=flt),
                ],
                "query": qm.FusionQuery(
                    fusion=qm.Fusion.RRF if fusion is Fusion.rrf else qm.Fusion.DBSF
                ),
            }
        if mode is RetrievalMode.dense:
            return {"query": dense, "using": "dense"}
        return {"query": sparse_q, "using": "bm25"}

    def _groups_embedded(
        self,
        kwargs: dict[str, Any],
        flt: qm.Filter | None,
        limit: int,
        size: int,
        depth: int,
        widen: bool = True,
    ) -> list[qm.PointGroup]:
        """Grouping over a bounded ranked window (see the module notes).

        The same parents in the same order as the server: the window widens while too few
        parents appear (not when ``widen`` is False: then the first window's parents, which
        are the server's first ones, only fewer). One deliberate difference: a parent's hits are those inside the
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
            if len(groups) >= limit or len(points) < depth or not widen:
                break
            if total is None:
                total = self.client.count(self.passages, count_filter=flt, exact=True).count
            if depth >= total:
                break
            depth *= 4
        return groups

    def _ranked(self, kwargs: dict[str, Any], flt: qm.Filter | None, depth: int) -> list[Any]:
        """The query's top ``depth`` passages (fused ones in hybrid mode, where each branch
        also contributes its top ``depth``)."""
        query = dict(kwargs)
        if "prefetch" in query:
            query["prefetch"] = [p.model_copy(update={"limit": depth}) for p in query["prefetch"]]
            # Fusion ranks only what the (filtered) branches returned: filtering the fused
            # list again would re-check every candidate's payload for nothing.
            flt = None
        return self.client.query_points(
            self.passages,
            query_filter=flt,
            limit=depth,
            with_payload=["start", "end", "passage_index", "parent_id"],
            **query,
        ).points

    def parent(self, parent_id: str, scope: ReadScope) -> ParentPayload | None:
        """One parent of a committed version that ``scope`` may read, or None (the same
        None whether it does not exist or is out of reach). A restricted scope is checked
        inside Qdrant (the parent's id and the access filter in one scroll), never against
        the cache."""
        if scope.unrestricted:
            with self._lock:
                found = self._parents([parent_id])
        else:
            flt = qm.Filter(must=[qm.HasIdCondition(has_id=[parent_id]), *scope.conditions()])
            with self._lock:
                points, _ = self.client.scroll(
                    self.parents, scroll_filter=flt, limit=1, with_payload=True
                )
            found = {str(p.id): ParentPayload.from_payload(p.payload) for p in points}
        return self._committed(found).get(parent_id)

    def forget(self, document_id: str) -> None:
        """Drop a document's parents from the cache (its access changed in place)."""
        with self._lock:
            for key in [k for k, v in self._parent_cache.items() if v.document_id == document_id]:
                del self._parent_cache[key]

    def _committed(self, parents: dict[str, ParentPayload]) -> dict[str, ParentPayload]:
        """The parents that belong to their document's committed version."""
        committed = self.committed_hashes(p.document_id for p in parents.values())
        return {i: p for i, p in parents.items() if committed.get(p.document_id) == p.content_hash}

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


def group_points(points: Iterable[Any], limit: int, size: int) -> list[qm.PointGroup]:
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
            parent_id=str(group.id),
            document_id=p.document_id,
            source=p.source,
            title=p.title,
            file_type=p.file_type,
            pages=list(p.pages),
            heading=p.heading,
            text=p.text,
            start=p.start,
            end=p.end,
            tokens=p.tokens,
            score=float(group.hits[0].score),
            parent_index=p.parent_index,
            name=p.display_name,
            passages=[
                MatchedPassage((h.payload or {})["start"], (h.payload or {})["end"], float(h.score))
                for h in group.hits
            ],
        )
