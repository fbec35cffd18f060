"""Queries straight through ONNX Runtime, on the model sentence-transformers loaded: the
same vectors, half the time.

A search embeds one short question (and, with the follow-up hop, a second one) while the
client waits. sentence-transformers' ``encode`` wraps the ONNX graph in torch tensors and
optimum's input/output handling; for one 20-token query on 2 cores that wrapping cost as
much as the graph itself (6.9 ms vs 3.7 ms per query, BENCHMARKS.md "A million passages").
``OnnxQueryEncoder`` runs the same graph with the model's own tokenizer, truncated to its
window as ``encode`` truncates, and the pooling and normalisation the model declares.

Its session: by default its own, on the same model file, with ``query_threads`` (1) intra-op
threads that do not spin between runs. A question is one short sequence: two threads barely
shorten it, and the shared session's pool (sized for batches of passages) keeps spinning
after each run on the cores the store's search needs next (measured at 1M passages, the
default search with the hop: p95 39 ms with the shared session, 29 ms with its own
one-thread one; BENCHMARKS.md). ONNX Runtime's ``Run`` is thread-safe, so questions also no
longer wait behind a batch of passages being embedded. The copy costs the model's size once
(33 MB for the bundled BGE). ``query_threads`` 0 keeps the shared session.

Invariant: it exists only for a model whose modules are exactly Transformer -> CLS pooling
-> Normalize on an ONNX session (``of`` returns None otherwise, and the embedder keeps
``encode``); for those its vectors equal ``encode``'s (cosine >= 0.99999 over real
questions, checked by the tests).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

log = logging.getLogger(__name__)


class OnnxQueryEncoder:
    def __init__(
        self, session: Any, tokenizer: Tokenizer, max_length: int, shared: bool = True
    ) -> None:
        self._session = session
        self._shared = shared  # ``session`` is the passages' (not one ``of`` made for questions)
        self._inputs = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self._tokenizer = tokenizer
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()

    @property
    def shared(self) -> bool:
        """Whether it runs the passages' session. ``Run`` is thread-safe either way; the
        embedder still takes its lock then, so that a question and a batch of passages do
        not share one intra-op pool at once."""
        return self._shared

    @classmethod
    def of(cls, model: Any, threads: int = 0) -> OnnxQueryEncoder | None:
        """The encoder for a loaded ``SentenceTransformer``, or None when its modules are not
        the shape this reproduces (see the module notes); with ``threads`` >= 1 on its own
        session of that many threads."""
        from sentence_transformers.models import Normalize, Pooling, Transformer

        modules = list(model)
        if len(modules) != 3:
            return None
        transformer, pooling, normalize = modules
        if not (
            isinstance(transformer, Transformer)
            and isinstance(pooling, Pooling)
            and isinstance(normalize, Normalize)
            and getattr(pooling, "pooling_mode", None) == "cls"
        ):
            return None
        session = getattr(getattr(transformer, "auto_model", None), "model", None)
        if not all(hasattr(session, a) for a in ("run", "get_inputs", "get_outputs")):
            return None  # not an ONNX backend (torch has no session to run)
        tokenizer = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        own = _own_session(session, threads) if threads >= 1 else None
        return cls(own or session, tokenizer, int(model.max_seq_length), shared=own is None)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 rows, one per text, ``batch_size`` texts per run."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(
            [self._batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        )

    def _batch(self, texts: list[str]) -> np.ndarray:
        """Padded to the longest text (CLS pooling reads the first position, which padding
        never touches; the attention mask keeps padding out of it)."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run([self._output], feed)[0]
        cls = np.asarray(hidden[:, 0], dtype=np.float32)
        norms = np.linalg.norm(cls, axis=1, keepdims=True)
        return cls / np.maximum(norms, 1e-12)


def _own_session(shared: Any, threads: int) -> Any:
    """A session on ``shared``'s model (its file, or its bytes), providers and optimisation
    level: ``threads`` intra-op threads that sleep between runs, one inter-op thread (see
    the module notes). None, logged, when it cannot be made: the shared session then serves
    questions, as with ``query_threads`` 0."""
    model = getattr(shared, "_model_path", None) or getattr(shared, "_model_bytes", None)
    try:
        if not model:
            raise ValueError("the shared session names neither a model file nor its bytes")
        options = ort.SessionOptions()
        options.graph_optimization_level = shared.get_session_options().graph_optimization_level
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = shared.get_providers()
        provider_options = shared.get_provider_options()
        return ort.InferenceSession(
            model,
            options,
            providers=providers,
            provider_options=[provider_options.get(p, {}) for p in providers],
        )
    except Exception as exc:  # a question still has the shared session
        log.warning("questions share the passages' ONNX session (no session of their own: %s)", exc)
        return None
