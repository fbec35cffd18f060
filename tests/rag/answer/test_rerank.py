"""The cross-encoder (the real MiniLM from the wheel) chooses among a wider pool."""

from rag.answer.rerank import CrossEncoderReranker
from rag.documents import Hit, MatchedPassage
from rag.settings import load_settings
from tests.helpers.hits import make_hit


def hit(i: int, text: str) -> Hit:
    score = 1.0 / (i + 1)
    passages = [MatchedPassage(0, len(text), score)]
    return make_hit(text, f"d{i}", parent_id=f"p{i}", score=score, passages=passages)


def test_the_answer_outside_the_first_k_is_brought_in():
    filler = [
        hit(i, f"Notes on topic {i}: schedules, budgets and minutes of meeting {i}.")
        for i in range(12)
    ]
    answer = hit(12, "The Zorblax reactor was built in Oslo, Norway, by the Hovinbyen works.")
    pool = filler + [answer]  # retrieval ranked the answer last, outside a top 4
    settings = load_settings()
    reranker = CrossEncoderReranker(settings.model_dir, settings.rerank_passages_per_parent)
    kept = reranker.rerank("Where was the Zorblax reactor built?", pool, keep=4)
    assert len(kept) == 4 and kept[0].parent_id == "p12"
    assert kept[0].score > kept[1].score
