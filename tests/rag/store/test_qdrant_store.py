"""The Qdrant store in embedded mode: schema guards, replacement, filters, the folder lock."""

import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from qdrant_client import models as qm

from rag.documents import document_id, parent_point_id, passage_point_id
from rag.embedding.sparse import BM25Encoder
from rag.settings import RetrievalMode
from rag.store.documents import ParentPoint, PassagePoint
from rag.store.payloads import DocumentRecord, ParentPayload, PassagePayload
from rag.store.qdrant_store import QdrantStore
from rag.store.schema import SchemaMismatch, StoreError
from rag.store.search import SearchFilters


# Positional, in the payloads' field order (as DocumentRecord below): the origin fields
# (document_id, content_hash, source, file_type), then each collection's own.
def parent_payload(
    doc: str, digest: str, source: str, file_type: str, name: str, index: int, text: str
) -> ParentPayload:
    return ParentPayload(doc, digest, source, file_type, name, index, text, 0, len(text), 3)


def passage_payload(
    doc: str,
    digest: str,
    source: str,
    file_type: str,
    parent_id: str,
    parent_index: int,
    passage_index: int,
    end: int,
    folders: list[str],
) -> PassagePayload:
    return PassagePayload(
        doc, digest, source, file_type, parent_id, parent_index, passage_index, 0, end, folders
    )


def add_doc(
    store: QdrantStore, name: str, digest: str, texts: list[str], folder="/docs", file_type="txt"
) -> None:
    enc = BM25Encoder()
    doc = document_id(name)
    source = f"{folder}/{name}.{file_type}"
    parents = [
        ParentPoint(
            parent_point_id(doc, digest, i),
            parent_payload(doc, digest, source, file_type, name, i, t),
        )
        for i, t in enumerate(texts)
    ]
    passages = []
    for i, (p, t) in enumerate(zip(parents, texts)):
        vec = [0.0] * 4
        vec[i % 4] = 1.0
        passages.append(
            PassagePoint(
                passage_point_id(doc, digest, i, 0),
                vec,
                enc.encode_document(t),
                passage_payload(doc, digest, source, file_type, p.id, i, 0, len(t), [folder, "/"]),
            )
        )
    store.documents.replace_document(
        DocumentRecord(doc, digest, source, file_type, title=name, parents=len(parents)),
        parents,
        passages,
    )


@pytest.fixture
def store(settings_factory):
    s = store = QdrantStore(settings_factory(), "test-model", 4)
    yield s
    store.close()


def test_replace_leaves_no_stale_points(store):
    add_doc(store, "a", "v1", ["alpha one", "alpha two", "alpha three"])
    add_doc(store, "a", "v2", ["alpha new"])
    assert store.documents.count_passages() == 1
    points, _ = store.client.scroll(store.names.parents, limit=10)
    assert [p.payload["content_hash"] for p in points] == ["v2"]
    assert store.documents.get_document(document_id("a")).content_hash == "v2"


def test_iterators_return_what_was_stored(store):
    add_doc(store, "a", "v1", ["alpha one", "alpha two"])
    add_doc(store, "b", "v1", ["beta"])
    parents = sorted(store.documents.iter_parents(), key=lambda p: p.payload.text)
    assert [p.payload.text for p in parents] == ["alpha one", "alpha two", "beta"]
    passages = list(store.documents.iter_passages())
    assert len(passages) == 3
    by_parent = {p.payload.parent_id: p for p in passages}
    assert set(by_parent) == {p.id for p in parents}
    first = by_parent[parents[0].id]
    assert first.dense == pytest.approx([1.0, 0.0, 0.0, 0.0])
    assert first.sparse.indices and len(first.sparse.indices) == len(first.sparse.values)


def test_delete_removes_everything(store):
    add_doc(store, "a", "v1", ["alpha"])
    add_doc(store, "b", "v1", ["beta"])
    assert store.documents.delete_document(document_id("a")) is True
    assert store.documents.delete_document(document_id("a")) is False
    assert [d.document_id for d in store.documents.list_documents()] == [document_id("b")]
    assert store.documents.count_passages() == 1


def test_filters_apply_to_both_branches(store):
    add_doc(store, "a", "v1", ["zebra crossing rules"], folder="/x", file_type="md")
    add_doc(store, "b", "v1", ["zebra stripes biology"], folder="/y", file_type="txt")
    sparse = BM25Encoder().encode_query("zebra")
    dense = [1.0, 0.0, 0.0, 0.0]
    for mode in RetrievalMode:
        for flt, expected in [
            (SearchFilters(folders=["/x"]), "a"),
            (SearchFilters(file_types=["TXT"]), "b"),
            (SearchFilters(document_ids=[document_id("a")]), "a"),
        ]:
            hits = store.search.search(dense, sparse, limit=5, filters=flt, mode=mode)
            assert [h.document_id for h in hits] == [document_id(expected)], (mode, flt)


def test_other_model_is_refused(settings_factory):
    s = settings_factory()
    QdrantStore(s, "model-a", 4).close()
    with pytest.raises(SchemaMismatch, match="model-a"):
        QdrantStore(s, "model-b", 4)


def test_old_dense_only_collection_is_refused_with_instructions(settings_factory):
    s = settings_factory()
    store = QdrantStore.unchecked(s, "m", 4)
    store.client.create_collection(
        store.names.passages,
        vectors_config={"dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE)},
    )
    store.close()
    with pytest.raises(SchemaMismatch, match="--recreate"):
        QdrantStore(s, "m", 4)
    fixed = QdrantStore.unchecked(s, "m", 4)
    fixed.recreate()
    fixed.close()
    QdrantStore(s, "m", 4).close()  # now accepted


def test_second_process_gets_a_clear_lock_error(store, settings_factory):
    code = (
        "import sys; from rag.store.qdrant_store import QdrantStore; "
        "from rag.store.schema import StoreError; from rag.settings import "
        f"Settings; s=Settings(data_dir={str(store.settings.data_dir)!r})\n"
        "try:\n QdrantStore(s, 'test-model', 4)\nexcept StoreError as e:\n print(e); sys.exit(3)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert "open in another process" in out.stdout
    assert StoreError


def add_many(
    store: QdrantStore,
    rng,
    parents: int,
    per_parent: int,
    near: list[float],
    close_parent: int = -1,
) -> None:
    """Parents with several passages each; ``close_parent``'s passages all sit next to ``near``."""
    enc = BM25Encoder()
    words = [f"term{i}" for i in range(40)]
    for d in range(parents):
        doc, digest, name = document_id(f"m{d}"), "v1", f"m{d}"
        source = f"/docs/{name}.txt"
        pid = parent_point_id(doc, digest, 0)
        parent = ParentPoint(pid, parent_payload(doc, digest, source, "txt", name, 0, "x" * 50))
        passages = []
        for j in range(per_parent):
            vec = (
                np.array(near) + rng.normal(0, 0.01, len(near))
                if d == close_parent
                else rng.normal(0, 1, len(near))
            ).tolist()
            # Varied lengths and term counts: no two passages tie on BM25 scores.
            text = " ".join(rng.choice(words, int(rng.integers(3, 30)))) + f" unique{d}x{j}"
            passages.append(
                PassagePoint(
                    passage_point_id(doc, digest, 0, j),
                    vec,
                    enc.encode_document(text),
                    passage_payload(doc, digest, source, "txt", pid, 0, j, 50, ["/docs", "/"]),
                )
            )
        store.documents.replace_document(
            DocumentRecord(doc, digest, source, "txt", title=name, parents=1), [parent], passages
        )


def native_groups(
    store: QdrantStore, mode: RetrievalMode, dense, sparse, limit: int, size: int
) -> list[qm.PointGroup]:
    """qdrant-client's own grouping (pure-Python engine, every point scored): the reference."""
    kwargs = (
        {"query": dense, "using": "dense"}
        if mode is RetrievalMode.dense
        else {
            "query": qm.SparseVector(indices=sparse.indices, values=sparse.values),
            "using": "bm25",
        }
    )
    return store.client.query_points_groups(
        store.names.passages,
        group_by="parent_id",
        limit=limit,
        group_size=size,
        with_payload=True,
        **kwargs,
    ).groups


@pytest.mark.parametrize("engine", ["edge", "python"])
@pytest.mark.parametrize("mode", [RetrievalMode.dense, RetrievalMode.sparse])
def test_embedded_grouping_matches_qdrant_grouping(settings_factory, tmp_path, mode, engine):
    """Our bounded-window grouping, on either embedded engine, against qdrant-client's
    exhaustive group-by on the same data (which follows the server's semantics)."""
    dense = [0.3, -0.2, 0.9, 0.1]
    sparse = BM25Encoder().encode_query("term3 term17 term22")
    reference_store = QdrantStore(
        settings_factory(data_dir=tmp_path / "ref", embedded_engine="python"), "test-model", 4
    )
    store = QdrantStore(settings_factory(prefetch_limit=1, embedded_engine=engine), "test-model", 4)
    try:
        for target in (reference_store, store):
            add_many(
                target,
                np.random.default_rng(7),
                parents=40,
                per_parent=6,
                near=[1.0, 0.0, 0.0, 0.0],
            )
        reference = native_groups(reference_store, mode, dense, sparse, 7, 3)
        hits = store.search.search(dense, sparse, limit=7, group_size=3, mode=mode)
        # Same parents in the same order; each parent's passages are the best of the
        # reference's list (those inside the ranked window), never others.
        assert [h.parent_id for h in hits] == [str(g.id) for g in reference]
        for hit, group in zip(hits, reference):
            assert 1 <= len(hit.passages) <= len(group.hits)
            expected = [h.score for h in group.hits][: len(hit.passages)]
            assert [p.score for p in hit.passages] == pytest.approx(expected, rel=1e-4)
    finally:
        reference_store.close()
        store.close()


def test_embedded_grouping_widens_until_enough_parents(settings_factory):
    """The top window can be one parent's passages only; the search must look further."""
    store = QdrantStore(settings_factory(prefetch_limit=1), "test-model", 4)
    try:
        rng = np.random.default_rng(3)
        near = [1.0, 0.0, 0.0, 0.0]
        add_many(store, rng, parents=12, per_parent=40, near=near, close_parent=0)
        for mode in RetrievalMode:
            hits = store.search.search(
                near, BM25Encoder().encode_query("term1 term2"), limit=3, group_size=1, mode=mode
            )
            assert len({h.parent_id for h in hits}) == 3, mode
            if mode is RetrievalMode.dense:
                assert hits[0].document_id == document_id("m0")
    finally:
        store.close()


def test_without_widening_the_first_window_is_all_there_is(settings_factory):
    """``widen=False`` (the follow-up hop's): the parents of the first window, however few,
    with one query; the same search widened finds the ``limit`` it asked for."""
    store = QdrantStore(settings_factory(prefetch_limit=1), "test-model", 4)
    try:
        near = [1.0, 0.0, 0.0, 0.0]
        add_many(
            store, np.random.default_rng(3), parents=12, per_parent=40, near=near, close_parent=0
        )
        queries = 0
        query_points = store.client.query_points

        def counting(*args, **kwargs):
            nonlocal queries
            queries += 1
            return query_points(*args, **kwargs)

        store.client.query_points = counting  # type: ignore[method-assign]
        counted: list[int] = []
        count = store.client.count

        def counting_counts(*args, **kwargs):
            counted.append(1)
            return count(*args, **kwargs)

        store.client.count = counting_counts  # type: ignore[method-assign]
        first = store.search.search(
            near, None, limit=3, group_size=1, mode=RetrievalMode.dense, widen=False
        )
        assert queries == 1 and len(first) < 3  # the window (3 passages): the close parent's
        assert not counted  # no count: widening was never considered
        assert first[0].document_id == document_id("m0")
        widened = store.search.search(near, None, limit=3, group_size=1, mode=RetrievalMode.dense)
        assert len(widened) == 3 and queries > 2
        assert widened[0].parent_id == first[0].parent_id
    finally:
        store.close()


@pytest.mark.parametrize(("window", "depth"), [(0.5, 6), (1.0, 12), (2.0, 24)])
def test_search_window_sets_each_branchs_depth_and_the_fused_window(
    settings_factory, window, depth
):
    """RAG_SEARCH_WINDOW: parents wanted x passages per parent x window passages ranked per
    branch and grouped (limit 4, 3 per parent); hybrid filters the branches, not the fusion."""
    store = QdrantStore(settings_factory(prefetch_limit=1, search_window=window), "test-model", 4)
    try:
        add_many(store, np.random.default_rng(5), parents=30, per_parent=6, near=[1, 0, 0, 0])
        seen: list[dict] = []
        query_points = store.client.query_points

        def recording(*args, **kwargs):
            seen.append(kwargs)
            return query_points(*args, **kwargs)

        store.client.query_points = recording  # type: ignore[method-assign]
        flt = SearchFilters(folders=["/docs"])
        hits = store.search.search(
            [1.0, 0, 0, 0], BM25Encoder().encode_query("term1"), limit=4, group_size=3, filters=flt
        )
        assert len(hits) == 4
        assert seen[0]["limit"] == depth
        assert [p.limit for p in seen[0]["prefetch"]] == [depth, depth]
        assert all(p.filter is not None for p in seen[0]["prefetch"])
        assert seen[0]["query_filter"] is None
    finally:
        store.close()


def test_a_store_of_the_pure_python_engine_is_adopted_by_edge(settings_factory):
    """Upgrading to the Edge engine keeps what was ingested (vectors copied, not re-embedded)."""
    old = QdrantStore(settings_factory(embedded_engine="python"), "test-model", 4)
    add_doc(old, "a", "v1", ["zebra crossing rules", "alpha two"])
    old.close()
    new = QdrantStore(settings_factory(embedded_engine="edge"), "test-model", 4)
    try:
        assert new.documents.count_passages() == 2
        assert [d.document_id for d in new.documents.list_documents()] == [document_id("a")]
        hits = new.search.search([1.0, 0.0, 0.0, 0.0], BM25Encoder().encode_query("zebra"), limit=2)
        assert hits[0].text == "zebra crossing rules"
    finally:
        new.close()
    again = QdrantStore(settings_factory(embedded_engine="edge"), "test-model", 4)
    try:  # adopted once: reopening does not copy again
        assert again.documents.count_passages() == 2
    finally:
        again.close()


def test_adopting_another_models_store_is_still_refused(settings_factory):
    old = QdrantStore(settings_factory(embedded_engine="python"), "other-model", 4)
    old.close()
    with pytest.raises(SchemaMismatch, match="other-model"):
        QdrantStore(settings_factory(embedded_engine="edge"), "test-model", 4)


def crash_in_replace(tmp_path, moment: str) -> str:
    """Run the replace in a process that SIGKILLs itself at ``moment``; return its data dir."""
    from tests.conftest import ROOT

    data = tmp_path / f"crash-{moment}"
    out = subprocess.run(
        [sys.executable, "-m", "tests.helpers.crash_replace", str(data), moment],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == -9, out.stderr  # really killed
    return str(data)


def texts(store):
    hits = store.search.search([1.0, 0.0, 0.0, 0.0], BM25Encoder().encode_query("alpha"), limit=10)
    return sorted(h.text for h in hits)


@pytest.mark.parametrize("moment, visible", [("points", "old"), ("commit", "new")])
def test_kill_9_inside_a_replace_shows_one_version_and_reopening_repairs(
    tmp_path, settings_factory, moment, visible
):
    from tests.helpers.crash_replace import V1, V2

    data = crash_in_replace(tmp_path, moment)
    expected = sorted(V1 if visible == "old" else V2)
    # Before any repair (as a server-mode API sees a crashed worker's store): searches
    # follow the record, so exactly one version is visible.
    raw = QdrantStore.unchecked(settings_factory(data_dir=data), "test-model", 4)
    try:
        assert raw.documents.count_passages() == len(V1) + len(V2)  # both versions are on disk
        assert texts(raw) == expected
    finally:
        raw.close()
    # Opening the store finishes or rolls back the replace: what a clean run would leave.
    store = QdrantStore(settings_factory(data_dir=data), "test-model", 4)
    try:
        assert store.documents.count_passages() == len(expected)
        assert texts(store) == expected
        record = store.documents.get_document(document_id("a"))
        assert record.content_hash == ("v1" if visible == "old" else "v2")
        assert record.state == "committed"
    finally:
        store.close()


def test_kill_9_inside_a_first_ingest_leaves_nothing(tmp_path, settings_factory):
    data = crash_in_replace(tmp_path, "first")
    raw = QdrantStore.unchecked(settings_factory(data_dir=data), "test-model", 4)
    try:
        assert raw.documents.count_passages() == 2 and texts(raw) == []
        assert (
            raw.documents.list_documents() == []
            and raw.documents.get_document(document_id("a")) is None
        )
    finally:
        raw.close()
    store = QdrantStore(settings_factory(data_dir=data), "test-model", 4)
    try:
        assert store.documents.count_passages() == 0
        points, _ = store.client.scroll(store.names.documents, limit=10)
        assert points == []
    finally:
        store.close()


def test_server_mode_recovery_leaves_live_replaces_alone(store):
    """Recovery in server mode only touches replaces older than the stale limit."""
    add_doc(store, "a", "v1", ["alpha one"])
    record = store.documents._record(document_id("a"))
    store.documents._put_record(replace(record, state="replacing", replacing_since=time.time()))
    assert store.documents.recover(older_than=600) == 0
    assert store.documents.recover(older_than=0) == 1
    assert store.documents._record(document_id("a")).state == "committed"


def test_access_fields_are_indexed_and_the_collection_is_a_tenant_index(settings_factory):
    """``collection`` is a tenant index (Qdrant keeps each tenant's points together) and
    ``acl`` a keyword index, on all three collections: the access filter runs on indexes."""
    store = QdrantStore(settings_factory(), "m", 4)
    try:
        for name in store.names.all():
            schema = store.client._shard(name).info().payload_schema  # type: ignore[attr-defined]
            assert schema["collection"].params.is_tenant is True, name
            assert "acl" in schema, name
    finally:
        store.close()
