"""The direct ONNX query path gives sentence-transformers' own vectors (rag.embedding.onnx_queries)."""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Normalize, Pooling

from rag.embedding.onnx_queries import OnnxQueryEncoder

QUESTIONS = [
    "Which NFL team represented the AFC at Super Bowl 50?",
    "who set Nietzsche's philosophical novel to music",
    "x",
    "Thus Spoke Zarathustra Richard Strauss " * 200,  # over the 512-token window: truncated
]


def _reference(embedder, texts: list[str]) -> np.ndarray:
    """sentence-transformers' own vectors for these queries, in one run."""
    return embedder.encoded(texts, embedder._instruction)


def test_the_bundled_bge_takes_the_direct_path_with_encodes_vectors(embedder) -> None:
    assert embedder._queries is not None
    ours = embedder.embed_queries(QUESTIONS)
    reference = _reference(embedder, QUESTIONS)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.99999
    # One at a time, as a search embeds (the int8 model's activation scales are computed
    # per run, so a row depends on its batch: compared run for run).
    alone = np.stack([embedder.embed_queries([q])[0] for q in QUESTIONS])
    singles = np.stack([_reference(embedder, [q])[0] for q in QUESTIONS])
    assert (alone * singles).sum(axis=1).min() >= 0.99999
    pairs = embedder._queries.encode([embedder._instruction + q for q in QUESTIONS], 2)
    in_pairs = np.concatenate([_reference(embedder, QUESTIONS[i : i + 2]) for i in (0, 2)])
    assert (pairs * in_pairs).sum(axis=1).min() >= 0.99999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_model_pooled_otherwise_keeps_encode(embedder) -> None:
    transformer = embedder._model[0]
    mean = SentenceTransformer(
        modules=[transformer, Pooling(embedder.dimension, pooling_mode="mean"), Normalize()],
        device="cpu",
    )
    assert OnnxQueryEncoder.of(mean) is None
    unnormalised = SentenceTransformer(
        modules=[transformer, Pooling(embedder.dimension, pooling_mode="cls")], device="cpu"
    )
    assert OnnxQueryEncoder.of(unnormalised) is None
    assert OnnxQueryEncoder.of(embedder._model) is not None


def test_questions_run_on_their_own_one_thread_session(embedder) -> None:
    """RAG_QUERY_THREADS (default 1): its own session of that many threads; 0: the shared
    one (rag.embedding.onnx_queries)."""
    queries = embedder._queries
    shared = embedder._model[0].auto_model.model
    assert not queries.shared and queries._session is not shared
    options = queries._session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    on_shared = OnnxQueryEncoder.of(embedder._model, 0)
    assert on_shared is not None and on_shared.shared and on_shared._session is shared
    two = OnnxQueryEncoder.of(embedder._model, 2)
    assert two is not None and two._session.get_session_options().intra_op_num_threads == 2
    question = [embedder._instruction + QUESTIONS[0]]
    assert float(on_shared.encode(question)[0] @ two.encode(question)[0]) >= 0.99999


def test_a_question_does_not_wait_for_passages_being_embedded(embedder) -> None:
    """Passages hold the embedder's lock for a whole batch; a question on its own session
    is embedded meanwhile (with the shared session it would wait for the lock)."""
    import threading

    done = threading.Event()
    with embedder._lock:  # as embed_passages holds it
        worker = threading.Thread(
            target=lambda: (embedder.embed_queries([QUESTIONS[0]]), done.set()), daemon=True
        )
        worker.start()
        assert done.wait(30), "the question waited for the passages' lock"


def test_on_the_shared_session_a_question_waits_for_the_passages(embedder, monkeypatch) -> None:
    """RAG_QUERY_THREADS=0: questions run the passages' session, one at a time with them
    (the embedder's lock), and still get encode's vectors."""
    import threading

    monkeypatch.setattr(embedder, "_queries", OnnxQueryEncoder.of(embedder._model, 0))
    assert embedder._queries.shared
    out: list[np.ndarray] = []
    done = threading.Event()
    with embedder._lock:
        worker = threading.Thread(
            target=lambda: (out.append(embedder.embed_queries([QUESTIONS[1]])), done.set()),
            daemon=True,
        )
        worker.start()
        assert not done.wait(1.0), "a question on the shared session ran beside the passages"
    assert done.wait(30)
    reference = _reference(embedder, [QUESTIONS[1]])
    assert float(out[0][0] @ reference[0]) >= 0.99999


def test_a_session_that_cannot_be_made_falls_back_to_the_shared_one(
    embedder, monkeypatch, caplog
) -> None:
    """Questions keep working on the passages' session, and the log says why."""
    import rag.embedding.onnx_queries as module

    def refuse(*args, **kwargs):
        raise RuntimeError("no memory for a second session")

    monkeypatch.setattr(module.ort, "InferenceSession", refuse)
    with caplog.at_level("WARNING", logger=module.__name__):
        fallback = OnnxQueryEncoder.of(embedder._model, 1)
    assert fallback is not None and fallback.shared
    assert "no memory for a second session" in caplog.text
    question = [embedder._instruction + QUESTIONS[0]]
    assert float(fallback.encode(question)[0] @ embedder._queries.encode(question)[0]) >= 0.99999
