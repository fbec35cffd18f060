"""Progress of an ingest run, as events a caller may follow (the terminal's bar, a job's
counts): ``RunStarted`` once, then ``FileDone`` per file and ``TokensEmbedded`` per batch.

Events say how far the run is, not what it did: the outcomes come with the ``Summary``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunStarted:
    """The files found under the paths named (walk problems not counted)."""

    files: int


@dataclass(frozen=True)
class FileDone:
    """One file's turn is over: it is unchanged or failed, or its passages wait in the
    embedding batch (stored at the batch's flush, or failed with it)."""

    source: str


@dataclass(frozen=True)
class TokensEmbedded:
    """A batch of passages was embedded: the tokens of their parents."""

    tokens: int


ProgressEvent = RunStarted | FileDone | TokensEmbedded

#: Called on the run's own thread, in order; it should return quickly.
Progress = Callable[[ProgressEvent], None]
