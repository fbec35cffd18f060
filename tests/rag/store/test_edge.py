"""The Qdrant Edge facade: the calls the store makes behave as qdrant-client's do."""

import pytest
from qdrant_client import models as qm

from rag.store.edge import EdgeClient

ID_A = "00000000-0000-0000-0000-00000000000a"
ID_B = "00000000-0000-0000-0000-00000000000b"


@pytest.fixture
def client(tmp_path):
    c = EdgeClient(tmp_path / "edge")
    yield c
    c.close()


def make_passages(c: EdgeClient) -> None:
    c.create_collection(
        "p",
        vectors_config={"dense": qm.VectorParams(size=2, distance=qm.Distance.COSINE)},
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        metadata={"model": "m"},
    )
    c.upsert(
        "p",
        [
            qm.PointStruct(
                id=ID_A,
                payload={"doc": "a"},
                vector={
                    "dense": [1.0, 0.0],
                    "bm25": qm.SparseVector(indices=[5, 1], values=[1.0, 2.0]),
                },
            ),
            qm.PointStruct(
                id=ID_B,
                payload={"doc": "b"},
                vector={"dense": [0.0, 1.0], "bm25": qm.SparseVector(indices=[7], values=[1.0])},
            ),
        ],
    )


def test_data_and_metadata_survive_reopening(tmp_path):
    c = EdgeClient(tmp_path / "edge")
    make_passages(c)
    c.create_collection("records", vectors_config={})
    c.upsert("records", [qm.PointStruct(id=ID_A, vector={}, payload={"x": 1})])
    c.close()
    c = EdgeClient(tmp_path / "edge")
    try:
        assert c.collection_exists("p") and c.collection_exists("records")
        config = c.get_collection("p").config
        assert config.metadata == {"model": "m"}
        assert config.params.sparse_vectors["bm25"].modifier == qm.Modifier.IDF
        assert c.count("p").count == 2
        assert [r.payload for r in c.retrieve("records", [ID_A])] == [{"x": 1}]
    finally:
        c.close()


def test_hybrid_query_fuses_both_branches_and_filters_them(client):
    make_passages(client)
    prefetch = [
        qm.Prefetch(query=[1.0, 0.0], using="dense", limit=10),
        qm.Prefetch(query=qm.SparseVector(indices=[7], values=[1.0]), using="bm25", limit=10),
    ]
    fused = client.query_points(
        "p", prefetch=prefetch, query=qm.FusionQuery(fusion=qm.Fusion.RRF), limit=10
    ).points
    assert {p.id for p in fused} == {ID_A, ID_B}  # one from each branch
    only_a = qm.Filter(must=[qm.FieldCondition(key="doc", match=qm.MatchValue(value="a"))])
    filtered = client.query_points(
        "p",
        prefetch=[p.model_copy(update={"filter": only_a}) for p in prefetch],
        query=qm.FusionQuery(fusion=qm.Fusion.RRF),
        query_filter=only_a,
        limit=10,
    ).points
    assert [p.id for p in filtered] == [ID_A]
    # An unsorted sparse query is accepted (the server sorts it too).
    sparse = client.query_points(
        "p", query=qm.SparseVector(indices=[5, 1], values=[1.0, 1.0]), using="bm25", limit=10
    ).points
    assert [p.id for p in sparse] == [ID_A]


def test_delete_by_filter_and_by_id(client):
    make_passages(client)
    client.delete(
        "p",
        qm.FilterSelector(
            filter=qm.Filter(must=[qm.FieldCondition(key="doc", match=qm.MatchAny(any=["a"]))])
        ),
    )
    assert [r.id for r in client.scroll("p", limit=10)[0]] == [ID_B]
    client.delete("p", qm.PointIdsList(points=[ID_B]))
    assert client.count("p").count == 0


def test_conditional_upsert_only_overwrites_matching_points(client):
    client.create_collection("claims", vectors_config={})
    mine = qm.Filter(
        should=[
            qm.FieldCondition(key="owner", match=qm.MatchValue(value="w1")),
            qm.FieldCondition(key="expires_at", range=qm.Range(lt=100.0)),
        ]
    )
    client.upsert(
        "claims",
        [qm.PointStruct(id=ID_A, vector={}, payload={"owner": "w2", "expires_at": 500.0})],
        update_filter=mine,
    )  # absent: inserted
    client.upsert(
        "claims",
        [qm.PointStruct(id=ID_A, vector={}, payload={"owner": "w1", "expires_at": 900.0})],
        update_filter=mine,
    )  # w2's, live: kept
    assert client.retrieve("claims", [ID_A])[0].payload["owner"] == "w2"


def test_a_second_instance_is_refused_with_qdrant_clients_message(client, tmp_path):
    with pytest.raises(RuntimeError, match="already accessed"):
        EdgeClient(tmp_path / "edge")


def test_unsupported_calls_fail_loudly(client):
    make_passages(client)
    with pytest.raises(NotImplementedError):
        client.query_points(
            "p", query=qm.FieldCondition(key="doc", match=qm.MatchText(text="a")), limit=1
        )
    with pytest.raises(NotImplementedError):
        client.scroll(
            "p",
            scroll_filter=qm.Filter(
                must=[qm.FieldCondition(key="doc", match=qm.MatchText(text="a"))]
            ),
        )
    with pytest.raises(ValueError, match="not found"):
        client.count("missing")
