"""The relevance floor: dense search always returns neighbours, so a question the corpus
knows nothing about is refused before the LLM is asked (real BGE, real store)."""

import asyncio

from rag.answer.events import NO_MATCHING_DOCUMENTS, AnswerRequest, FinalEvent
from rag.answer.pipeline import RagPipeline
from rag.answer.retrieval import RelevanceFloor, Retriever
from rag.settings import RetrievalMode, Settings
from rag.store.documents import EVERYTHING

GIBBERISH = "qwzx vlorp fnagh trelb?"
REAL = "Where was the Zorblax reactor built?"
FLOOR = RelevanceFloor.of(Settings(_env_file=None))


def test_the_default_floor_is_on():
    assert FLOOR.on and FLOOR.cosine_without_terms > FLOOR.cosine > 0


def test_gibberish_is_under_the_floor_and_a_real_question_above(ingested, embedder):
    retriever = Retriever(ingested["settings"], embedder, ingested["store"])
    vectors = embedder.embed_queries([GIBBERISH, REAL])
    junk = retriever.relevance(vectors[0].tolist(), retriever.sparse.encode_query(GIBBERISH))
    real = retriever.relevance(vectors[1].tolist(), retriever.sparse.encode_query(REAL))
    assert not junk.terms and real.terms
    assert not FLOOR.admits(junk) and FLOOR.admits(real)
    for mode in (RetrievalMode.hybrid, RetrievalMode.dense):
        assert retriever.retrieve(GIBBERISH, 8, mode, None) != []  # neighbours, always
        assert retriever.retrieve(GIBBERISH, 8, mode, None, FLOOR) == []
        assert retriever.retrieve(REAL, 8, mode, None, FLOOR)[0].name == "reactor-update.eml"
    assert not RelevanceFloor().on  # 0 and 0: off


def test_the_answer_path_refuses_gibberish_without_the_llm(ingested, embedder):
    """No LLM configured: asking it would raise, so this answer never reached it."""
    settings = ingested["settings"]
    assert settings.min_relevance == FLOOR.cosine  # the defaults, as the API serves them
    pipeline = RagPipeline(settings, embedder, ingested["store"], llm=None)

    async def final() -> FinalEvent:
        events = [
            e async for e in pipeline.answer(AnswerRequest(question=GIBBERISH, scope=EVERYTHING))
        ]
        assert isinstance(events[-1], FinalEvent)
        return events[-1]

    answer = asyncio.run(final())
    assert answer.reason == NO_MATCHING_DOCUMENTS and answer.sources == []
