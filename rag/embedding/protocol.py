"""What the store, the chunker and the pipeline rely on from an embedder.

Two implementations: ``rag.embedding.local`` (sentence-transformers in-process) and
``rag.embedding.server`` (an OpenAI-compatible embedding server); ``rag.embedding.factory``
picks one from the settings. Passages and queries are embedded by separate calls because
BGE is asymmetric (queries carry an instruction). Vectors are L2-normalised float32 rows.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str:
        """The model's name, recorded in the collection's metadata."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The model's window: no passage may be longer (it would be truncated silently)."""
        ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...
