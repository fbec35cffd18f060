"""What an ingest run reports: one ``FileOutcome`` per file (or per document pruned), the
time spent per stage, and the ``Summary`` of a run; or, where retrying may help, the
``TransientFailure`` it raises instead.

``Summary.as_dict`` is the ``--json`` contract (also what job records store): its keys, their
order and their rounding are fixed; ``SummaryJSON`` spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TypedDict


class TransientFailure(RuntimeError):
    """The store or the embedding server failed: the same files may well succeed later
    (the queue retries them); raised only by an ``Indexer`` built with ``raise_transient``."""


class Outcome(StrEnum):
    INGESTED = "ingested"  # stored (a new document or a replacement of its old version)
    UNCHANGED = "unchanged"  # stored already with the same content hash: not re-embedded
    FAILED = "failed"  # not stored; what was stored before for it is kept
    REMOVED = "removed"  # pruned: its file is gone, its document deleted


@dataclass(frozen=True)
class FileOutcome:
    """What a run did to one file (``REMOVED``: to one stored document whose file is gone).

    ``source`` is the display path of the file as named (the summary's "path"; the
    document's own ``source`` is its real path, the same for a plain path); ``path`` the file
    as walked. Counts are those stored, so non-zero only when INGESTED;
    ``warnings`` name the parts left out (blank or unreadable scanned pages);
    ``access_changed``: UNCHANGED, but its collection or access list was changed in place
    (the job or an access file said otherwise; ``ingest.files.access``)."""

    path: Path
    source: str
    state: Outcome
    error: str = ""  # FAILED only: the one-line reason
    warnings: tuple[str, ...] = ()
    access_changed: bool = False
    parents: int = 0
    passages: int = 0
    tokens: int = 0


@dataclass
class Stages:
    """Seconds per stage of a run (OCR runs inside the parse, and is reported apart)."""

    read: float = 0.0
    parse: float = 0.0
    ocr: float = 0.0
    chunk: float = 0.0
    embed: float = 0.0
    store: float = 0.0

    def add(self, other: Stages) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return {f.name: round(getattr(self, f.name), 3) for f in fields(self)}


class FailureJSON(TypedDict):
    path: str
    error: str


class WarningJSON(TypedDict):
    path: str
    warning: str


class SummaryJSON(TypedDict):
    files_seen: int
    ingested: int
    unchanged: int
    access_changed: int  # of the unchanged: their access was changed in place
    removed: int
    failed: list[FailureJSON]
    warnings: list[WarningJSON]
    parents: int
    passages: int
    tokens: int
    seconds: float
    stages: dict[str, float]
    tokens_per_second: float


@dataclass
class Summary:
    """A run: the files it found, each outcome in the order it was decided, and its time.
    The counts are read off the outcomes, so they cannot disagree with them."""

    files_seen: int = 0
    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stages: Stages = field(default_factory=Stages)

    def record(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)

    def of_state(self, state: Outcome) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.state is state]

    @property
    def failed(self) -> list[FileOutcome]:
        return self.of_state(Outcome.FAILED)

    @property
    def ingested(self) -> int:
        return len(self.of_state(Outcome.INGESTED))

    @property
    def unchanged(self) -> int:
        return len(self.of_state(Outcome.UNCHANGED))

    @property
    def access_changed(self) -> int:
        return sum(1 for o in self.outcomes if o.access_changed)

    @property
    def removed(self) -> int:
        return len(self.of_state(Outcome.REMOVED))

    @property
    def parents(self) -> int:
        return sum(o.parents for o in self.outcomes)

    @property
    def passages(self) -> int:
        return sum(o.passages for o in self.outcomes)

    @property
    def tokens(self) -> int:
        return sum(o.tokens for o in self.outcomes)

    def as_dict(self) -> SummaryJSON:
        tokens = self.tokens
        return {
            "files_seen": self.files_seen,
            "ingested": self.ingested,
            "unchanged": self.unchanged,
            "access_changed": self.access_changed,
            "removed": self.removed,
            "failed": [{"path": o.source, "error": o.error} for o in self.failed],
            "warnings": [
                {"path": o.source, "warning": w} for o in self.outcomes for w in o.warnings
            ],
            "parents": self.parents,
            "passages": self.passages,
            "tokens": tokens,
            "seconds": round(self.seconds, 3),
            "stages": self.stages.as_dict(),
            "tokens_per_second": round(tokens / self.seconds, 1) if self.seconds else 0.0,
        }
