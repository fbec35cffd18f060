"""The Qdrant store in embedded mode: schema guards, replacement, filters, the folder lock."""

import subprocess
import sys

import numpy as np
import pytest
from qdrant_client import models as qm

from rag.documents import document_id, parent_point_id, passage_point_id
from rag.settings import RetrievalMode
from rag.sparse import BM25Encoder
from rag.store import ParentPoint, PassagePoint, QdrantStore, SchemaMismatch, SearchFilters, StoreError


def add_doc(store: QdrantStore, name: str, digest: str, texts: list[str], folder="/docs",
            file_type="txt") -> None:
    enc = BM25Encoder()
    doc = document_id(name)
    source = f"{folder}/{name}.{file_type}"
    common = {"document_id": doc, "content_hash": digest, "source": source,
              "file_type": file_type}
    parents = [ParentPoint(parent_point_id(doc, digest, i),
                           {**common, "title": name, "parent_index": i, "text": t, "start": 0,
                            "end": len(t), "tokens": 3, "pages": [], "heading": ""})
               for i, t in enumerate(texts)]
    passages = []
    for i, (p, t) in enumerate(zip(parents, texts)):
        vec = [0.0] * 4
        vec[i % 4] = 1.0
        passages.append(PassagePoint(
            passage_point_id(doc, digest, i, 0), vec, enc.encode_document(t),
            {**common, "parent_id": p.id, "parent_index": i, "passage_index": 0, "start": 0,
             "end": len(t), "folders": [folder, "/"]}))
    store.replace_document({**common, "title": name, "parents": len(parents)}, parents, passages)


@pytest.fixture
def store(settings_factory):
    s = store = QdrantStore(settings_factory(), "test-model", 4)
    yield s
    store.close()


def test_replace_leaves_no_stale_points(store):
    add_doc(store, "a", "v1", ["alpha one", "alpha two", "alpha three"])
    add_doc(store, "a", "v2", ["alpha new"])
    assert store.count_passages() == 1
    points, _ = store.client.scroll(store.parents, limit=10)
    assert [p.payload["content_hash"] for p in points] == ["v2"]
    assert store.get_document(document_id("a"))["content_hash"] == "v2"


def test_delete_removes_everything(store):
    add_doc(store, "a", "v1", ["alpha"])
    add_doc(store, "b", "v1", ["beta"])
    assert store.delete_document(document_id("a")) is True
    assert store.delete_document(document_id("a")) is False
    assert [d["document_id"] for d in store.list_documents()] == [document_id("b")]
    assert store.count_passages() == 1


def test_filters_apply_to_both_branches(store):
    add_doc(store, "a", "v1", ["zebra crossing rules"], folder="/x", file_type="md")
    add_doc(store, "b", "v1", ["zebra stripes biology"], folder="/y", file_type="txt")
    sparse = BM25Encoder().encode_query("zebra")
    dense = [1.0, 0.0, 0.0, 0.0]
    for mode in RetrievalMode:
        for flt, expected in [(SearchFilters(folders=["/x"]), "a"),
                              (SearchFilters(file_types=["TXT"]), "b"),
                              (SearchFilters(document_ids=[document_id("a")]), "a")]:
            hits = store.search(dense, sparse, limit=5, filters=flt, mode=mode)
            assert [h.document_id for h in hits] == [document_id(expected)], (mode, flt)


def test_other_model_is_refused(settings_factory):
    s = settings_factory()
    QdrantStore(s, "model-a", 4).close()
    with pytest.raises(SchemaMismatch, match="model-a"):
        QdrantStore(s, "model-b", 4)


def test_old_dense_only_collection_is_refused_with_instructions(settings_factory):
    s = settings_factory()
    store = QdrantStore.unchecked(s, "m", 4)
    store.client.create_collection(store.passages, vectors_config={
        "dense": qm.VectorParams(size=4, distance=qm.Distance.COSINE)})
    store.close()
    with pytest.raises(SchemaMismatch, match="--recreate"):
        QdrantStore(s, "m", 4)
    fixed = QdrantStore.unchecked(s, "m", 4)
    fixed.recreate()
    fixed.close()
    QdrantStore(s, "m", 4).close()  # now accepted


def test_second_process_gets_a_clear_lock_error(store, settings_factory):
    code = ("import sys; from rag.store import QdrantStore, StoreError; from rag.settings import "
            f"Settings; s=Settings(data_dir={str(store.settings.data_dir)!r})\n"
            "try:\n QdrantStore(s, 'test-model', 4)\nexcept StoreError as e:\n print(e); sys.exit(3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert "open in another process" in out.stdout
    assert StoreError


def add_many(store: QdrantStore, rng, parents: int, per_parent: int, near: list[float],
             close_parent: int = -1) -> None:
    """Parents with several passages each; ``close_parent``'s passages all sit next to ``near``."""
    enc = BM25Encoder()
    words = [f"term{i}" for i in range(40)]
    for d in range(parents):
        doc, digest, name = document_id(f"m{d}"), "v1", f"m{d}"
        common = {"document_id": doc, "content_hash": digest, "source": f"/docs/{name}.txt",
                  "file_type": "txt"}
        pid = parent_point_id(doc, digest, 0)
        parent = ParentPoint(pid, {**common, "title": name, "parent_index": 0, "text": "x" * 50,
                                   "start": 0, "end": 50, "tokens": 3, "pages": [],
                                   "heading": ""})
        passages = []
        for j in range(per_parent):
            vec = (np.array(near) + rng.normal(0, 0.01, len(near)) if d == close_parent
                   else rng.normal(0, 1, len(near))).tolist()
            text = " ".join(rng.choice(words, 6)) + f" unique{d}x{j}"
            passages.append(PassagePoint(
                passage_point_id(doc, digest, 0, j), vec, enc.encode_document(text),
                {**common, "parent_id": pid, "parent_index": 0, "passage_index": j,
                 "start": 0, "end": 50, "folders": ["/docs", "/"]}))
        store.replace_document({**common, "title": name, "parents": 1}, [parent], passages)


def native_groups(store: QdrantStore, mode: RetrievalMode, dense, sparse, limit: int, size: int):
    """qdrant-client's own grouping (scores every point): the reference for ours."""
    kwargs = ({"query": dense, "using": "dense"} if mode is RetrievalMode.dense
              else {"query": qm.SparseVector(indices=sparse.indices, values=sparse.values),
                    "using": "bm25"})
    groups = store.client.query_points_groups(store.passages, group_by="parent_id", limit=limit,
                                              group_size=size, **kwargs).groups
    return [(str(g.id), [h.id for h in g.hits]) for g in groups]


@pytest.mark.parametrize("mode", [RetrievalMode.dense, RetrievalMode.sparse])
def test_embedded_grouping_matches_qdrant_grouping(settings_factory, mode):
    store = QdrantStore(settings_factory(prefetch_limit=1), "test-model", 4)
    try:
        rng = np.random.default_rng(7)
        add_many(store, rng, parents=40, per_parent=6, near=[1.0, 0.0, 0.0, 0.0])
        dense = [0.3, -0.2, 0.9, 0.1]
        sparse = BM25Encoder().encode_query("term3 term17 term22")
        hits = store.search(dense, sparse, limit=7, group_size=3, mode=mode)
        reference = native_groups(store, mode, dense, sparse, 7, 3)
        # Same parents in the same order; each parent's passages are the best of the
        # server's list (those inside the ranked window), never others.
        assert [h.parent_id for h in hits] == [g for g, _ in reference]
        for hit, (_, ids) in zip(hits, reference):
            assert 1 <= len(hit.passages) <= len(ids)
        native = store.client.query_points_groups(
            store.passages, group_by="parent_id", limit=7, group_size=3,
            **({"query": dense, "using": "dense"} if mode is RetrievalMode.dense else
               {"query": qm.SparseVector(indices=sparse.indices, values=sparse.values),
                "using": "bm25"}), with_payload=True).groups
        for hit, group in zip(hits, native):
            expected = [h.score for h in group.hits][:len(hit.passages)]
            assert [p["score"] for p in hit.passages] == pytest.approx(expected)
    finally:
        store.close()


def test_embedded_grouping_widens_until_enough_parents(settings_factory):
    """The top window can be one parent's passages only; the search must look further."""
    store = QdrantStore(settings_factory(prefetch_limit=1), "test-model", 4)
    try:
        rng = np.random.default_rng(3)
        near = [1.0, 0.0, 0.0, 0.0]
        add_many(store, rng, parents=12, per_parent=40, near=near, close_parent=0)
        for mode in RetrievalMode:
            hits = store.search(near, BM25Encoder().encode_query("term1 term2"), limit=3,
                                group_size=1, mode=mode)
            assert len(hits) == 3, mode
            if mode is not RetrievalMode.sparse:
                assert hits[0].document_id == document_id("m0"), mode
    finally:
        store.close()
