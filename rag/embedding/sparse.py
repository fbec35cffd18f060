"""BM25-style lexical vectors for Qdrant's sparse index.

Dense bge-small alone loses to BM25 on questions that share words with their passage (see
shared/BASELINES.md), so every passage also carries term weights. The document side stores
BM25's saturated, length-normalised term frequency; the IDF factor is left to Qdrant's
``Modifier.IDF``, which recomputes it from the live collection, so weights stay right as the
corpus grows and no global statistics have to be kept here. Terms are Snowball-stemmed by
PyStemmer (a maintained C library) after stop-word removal.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

import Stemmer  # PyStemmer
from bm25s.stopwords import STOPWORDS_EN

#: Bump when tokenisation or weighting changes: stored vectors become incompatible.
SPARSE_SCHEME = "bm25-snowball-en-v1"

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(STOPWORDS_EN)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


class BM25Encoder:
    """Turns text into sparse vectors; ``k1``/``b`` are BM25's usual constants.

    ``avg_terms`` stands in for the corpus' mean passage length: passages are cut to a
    fixed token target, so their lengths vary little and a constant is accurate enough.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_terms: float = 100.0) -> None:
        self.k1, self.b, self.avg_terms = k1, b, avg_terms
        self._stemmer = Stemmer.Stemmer("english")

    def terms(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
        return self._stemmer.stemWords(words)

    @staticmethod
    def term_id(term: str) -> int:
        """A stable 32-bit id per term (Qdrant's sparse indices are u32)."""
        return zlib.crc32(term.encode("utf-8"))

    def _vector(self, weights: dict[int, float]) -> SparseVector:
        indices = sorted(weights)
        return SparseVector(indices, [weights[i] for i in indices])

    def encode_document(self, text: str) -> SparseVector:
        counts = Counter(self.term_id(t) for t in self.terms(text))
        length = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_terms)
        return self._vector({i: tf * (self.k1 + 1) / (tf + norm) for i, tf in counts.items()})

    def encode_query(self, text: str) -> SparseVector:
        return self._vector(dict(Counter(self.term_id(t) for t in self.terms(text))))
