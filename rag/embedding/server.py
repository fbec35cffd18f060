"""Dense embeddings from an OpenAI-compatible embedding server (``POST /v1/embeddings``).

vLLM's pooling runner in production (it is already in the stack, on the GPU), TEI or
infinity work too. Texts go out in requests of ``RAG_EMBEDDING_REQUEST_SIZE``, up to
``RAG_EMBEDDING_REQUESTS_IN_FLIGHT`` at once; a request that fails for a reason that may pass
(refused connection, timeout, 429, 5xx) is retried with exponential backoff, and then the
whole call raises ``EmbeddingServerError``, which the queue treats as transient.

Token offsets (for chunking) come from the same model's tokenizer, locally: the chunker must
know passage sizes without a round trip per text.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from tenacity import (
    RetryError,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tokenizers import Tokenizer

from rag.assets import bge_path
from rag.settings import BUNDLED_BGE, EmbeddingSettings

log = logging.getLogger(__name__)


class EmbeddingServerError(RuntimeError):
    """The server did not answer usefully after the retries (or refused the request)."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)  # refused, reset, timeouts


def _tokenizer_file(settings: EmbeddingSettings) -> Path:
    if settings.embedding_model == BUNDLED_BGE:
        return bge_path(settings.model_dir) / "tokenizer.json"
    return Path(settings.embedding_model) / "tokenizer.json"


class ServerEmbedder:
    """The ``Embedder`` protocol over HTTP; ``name`` is the configured model (the collection
    records it), ``served_model`` what the server calls it."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        if not settings.embedding_url:
            raise ValueError("RAG_EMBEDDING_URL is not set")
        tokenizer_file = _tokenizer_file(settings)
        if not tokenizer_file.is_file():
            raise FileNotFoundError(
                f"{tokenizer_file} is missing: run scripts/setup.sh first "
                "(the tokenizer sizes passages locally)"
            )
        self.name = settings.embedding_model
        self.served_model = settings.embedding_server_model
        self.url = settings.embedding_url.rstrip("/")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.max_tokens = 510  # BERT's 512 less [CLS] and [SEP]
        self._instruction = settings.query_instruction
        self._request_size = settings.embedding_request_size
        key = settings.embedding_api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(
                settings.embedding_timeout_s, connect=min(5.0, settings.embedding_timeout_s)
            ),
        )
        self._pool = ThreadPoolExecutor(
            settings.embedding_requests_in_flight, thread_name_prefix="embed-request"
        )
        self._post = retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(settings.embedding_retries + 1),
            wait=wait_exponential(multiplier=0.5, max=15),
            reraise=False,
        )(self._post_once)
        self._dimension: int | None = None
        self._dimension_lock = threading.Lock()

    # --- the Embedder protocol -------------------------------------------------------------
    @property
    def dimension(self) -> int:
        """Asked of the server once (a probe text), so a wrong URL fails at start."""
        with self._dimension_lock:
            if self._dimension is None:
                self._dimension = int(self._embed(["dimension probe"]).shape[1])
            return self._dimension

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed([self._fit(t) for t in texts])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed([self._fit(self._instruction + t) for t in texts])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # --- internals -------------------------------------------------------------------------
    def _fit(self, text: str) -> str:
        """Cut a text to the model's window here, the same way for every server (some
        refuse over-long input, some truncate silently)."""
        offsets = self.token_offsets(text)
        return text if len(offsets) <= self.max_tokens else text[: offsets[self.max_tokens][0]]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        chunks = [
            texts[i : i + self._request_size] for i in range(0, len(texts), self._request_size)
        ]
        try:
            parts = list(self._pool.map(self._post, chunks))
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise EmbeddingServerError(
                f"embedding server {self.url} failed after retries: {_describe(cause)}"
            ) from cause
        except httpx.HTTPStatusError as exc:  # a 4xx: retrying will not help
            raise EmbeddingServerError(
                f"embedding server {self.url} refused the request: {_describe(exc)}",
                transient=False,
            ) from exc
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EmbeddingServerError(
                f"embedding server {self.url} answered badly: {_describe(exc)}"
            ) from exc
        vectors = np.asarray([v for part in parts for v in part], dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise EmbeddingServerError(
                f"embedding server {self.url} returned "
                f"{vectors.shape[0]} vectors for {len(texts)} texts"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)  # cosine space, as the in-process model

    def _post_once(self, texts: list[str]) -> list[list[float]]:
        response = self._client.post(
            f"{self.url}/embeddings",
            json={"model": self.served_model, "input": texts, "encoding_format": "float"},
        )
        response.raise_for_status()
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        return [d["embedding"] for d in data]


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        body = " ".join(exc.response.text.split())[:200]
        return f"HTTP {exc.response.status_code} {body}".strip()
    if exc is None:
        return "no answer"
    return f"{type(exc).__name__}: {exc}"[:300]
