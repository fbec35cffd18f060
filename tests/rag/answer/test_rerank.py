"""The cross-encoder (the real MiniLM from the wheel) chooses among a wider pool."""

from rag.answer.rerank import CrossEncoderReranker
from rag.documents import Hit, MatchedPassage
from rag.settings import load_settings


def hit(i: int, text: str) -> Hit:
    return Hit(
        parent_id=f"p{i}",
        document_id=f"d{i}",
        source=f"/d{i}.txt",
        title=f"d{i}",
        file_type="txt",
        pages=[],
        heading="",
        text=text,
        start=0,
        end=len(text),
        tokens=10,
        score=1.0 / (i + 1),
        parent_index=0,
        passages=[MatchedPassage(0, len(text), 1.0 / (i + 1))],
    )


def test_the_answer_outside_the_first_k_is_brought_in():
    filler = [
        hit(i, f"Notes on topic {i}: schedules, budgets and minutes of meeting {i}.")
        for i in range(12)
    ]
    answer = hit(12, "The Zorblax reactor was built in Oslo, Norway, by the Hovinbyen works.")
    pool = filler + [answer]  # retrieval ranked the answer last, outside a top 4
    reranker = CrossEncoderReranker(load_settings())
    kept = reranker.rerank("Where was the Zorblax reactor built?", pool, keep=4)
    assert len(kept) == 4 and kept[0].parent_id == "p12"
    assert kept[0].score > kept[1].score
