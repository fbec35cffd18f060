from rag.embedding.sparse import BM25Encoder


def test_stemming_and_stopwords():
    enc = BM25Encoder()
    assert enc.terms("The runners and the running") == ["runner", "run"]


def test_document_weights_saturate_and_are_deterministic():
    enc = BM25Encoder()
    once = enc.encode_document("valve")
    many = enc.encode_document("valve " * 50)
    assert once.indices == many.indices
    assert many.values[0] > once.values[0]
    assert many.values[0] < enc.k1 + 1  # saturation bound
    assert enc.encode_document("valve") == once


def test_query_of_stopwords_is_empty():
    assert BM25Encoder().encode_query("is the").indices == []
