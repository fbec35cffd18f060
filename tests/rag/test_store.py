"""The Qdrant store in embedded mode: schema guards, replacement, filters, the folder lock."""

import subprocess
import sys

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
