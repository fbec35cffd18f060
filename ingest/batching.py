"""Embedding in batches that span files, then one crash-safe replace per document.

E-mails are a passage or two each: embedding them file by file would leave most of the
embedder's throughput unused, so prepared documents wait here until ``flush_passages`` of
their passages are waiting (or the run ends). A flush embeds them in one call, then writes
each document as a replacement of its old version (``DocumentStore.replace_document``: new
points first, the record last), so a document reaches the store only once all its vectors
exist, and a failure at any point leaves the previous version intact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.files.identity import display_path
from ingest.outcomes import FileOutcome, Outcome, Stages, TransientFailure
from ingest.points import document_points
from rag import tracing
from rag.documents import Parent, ParsedDocument
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder
from rag.store.documents import DocumentStore

log = logging.getLogger(__name__)

#: Embed once this many passages are waiting (several files' worth).
FLUSH_PASSAGES = 256


@dataclass(frozen=True)
class Prepared:
    """A file read, parsed and chunked, waiting for its vectors. ``path`` is the file as
    named (what its outcome reports), ``doc.source`` the document it is (its real path)."""

    path: Path
    doc: ParsedDocument
    parents: list[Parent]
    #: the ``{collection, acl}`` payload every point and the record get (``ingest.files.access``)
    access: dict[str, Any] = field(
        default_factory=lambda: {"collection": "default", "acl": ["default"]}
    )
    owner: str = ""  # the record's ``ingested_by``

    @property
    def reported(self) -> str:
        return display_path(self.path)

    @property
    def passages(self) -> int:
        return sum(len(p.passages) for p in self.parents)

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.parents)

    def failed(self, error: str) -> FileOutcome:
        return FileOutcome(
            self.path, self.reported, Outcome.FAILED, error, tuple(self.doc.warnings)
        )


@dataclass(frozen=True)
class Flushed:
    """What a flush decided: one outcome per document, and the tokens it embedded (0 when
    the embedding failed)."""

    outcomes: list[FileOutcome]
    tokens: int


class EmbedBatch:
    """Prepared documents waiting to be embedded and stored; used by one thread."""

    def __init__(
        self,
        embedder: Embedder,
        documents: DocumentStore,
        sparse: BM25Encoder,
        raise_transient: bool,
        flush_passages: int | None = None,
    ) -> None:
        """``raise_transient``: an embedding or store fault raises ``TransientFailure``
        (the queue retries) instead of failing the batch's files. ``flush_passages``:
        default ``FLUSH_PASSAGES``."""
        self.embedder, self.documents, self.sparse = embedder, documents, sparse
        self.raise_transient = raise_transient
        self.flush_passages = flush_passages or FLUSH_PASSAGES
        self._pending: list[Prepared] = []
        self._waiting = 0

    def add(self, item: Prepared) -> None:
        self._pending.append(item)
        self._waiting += item.passages

    @property
    def full(self) -> bool:
        return self._waiting >= self.flush_passages

    def flush(self, stages: Stages) -> Flushed:
        """Embed what waits, store each document; the batch is empty afterwards."""
        pending, self._pending, self._waiting = self._pending, [], 0
        if not pending:
            return Flushed([], 0)
        texts = [ps.text for item in pending for parent in item.parents for ps in parent.passages]
        t0 = time.perf_counter()
        try:
            with tracing.span("ingest.embed", rag_files=len(pending), rag_passages=len(texts)):
                vectors = self.embedder.embed_passages(texts) if texts else np.zeros((0, 0))
        except Exception as exc:
            log.warning("embedding failed: %s: %s", type(exc).__name__, exc)
            if self.raise_transient and getattr(exc, "transient", True):
                raise TransientFailure(f"embedding failed: {exc}") from exc
            error = f"embedding failed: {type(exc).__name__}: {exc}"
            return Flushed([item.failed(error) for item in pending], 0)
        stages.embed += time.perf_counter() - t0
        outcomes = []
        cursor = 0
        for item in pending:
            count = item.passages
            outcomes.append(self._store(item, vectors[cursor : cursor + count], stages))
            cursor += count
        return Flushed(outcomes, sum(item.tokens for item in pending))

    def _store(self, item: Prepared, vectors: np.ndarray, stages: Stages) -> FileOutcome:
        t0 = time.perf_counter()
        try:
            with tracing.span(
                "ingest.store",
                rag_document_id=item.doc.id,
                rag_parents=len(item.parents),
                rag_passages=item.passages,
            ):
                points = document_points(
                    item.doc, item.parents, vectors, self.sparse, item.access, item.owner
                )
                self.documents.replace_document(points.record, points.parents, points.passages)
        except Exception as exc:
            log.exception("store failed for %s", item.doc.source)
            if self.raise_transient:
                raise TransientFailure(f"store failed: {type(exc).__name__}: {exc}") from exc
            return item.failed(f"store failed: {type(exc).__name__}: {exc}")
        stages.store += time.perf_counter() - t0
        return FileOutcome(
            item.path,
            item.reported,
            Outcome.INGESTED,
            warnings=tuple(item.doc.warnings),
            parents=len(item.parents),
            passages=item.passages,
            tokens=item.tokens,
        )
