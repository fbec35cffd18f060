"""Answer feedback on disk: one JSON line per rating at ``RAG_FEEDBACK_LOG`` (default
``<data_dir>/feedback/feedback.jsonl``, next to the store).

Invariants:

- Bounded: a rating's texts and lists are checked by the models before anything is written
  (question and answer at most ``QUESTION_MAX`` / ``ANSWER_MAX`` characters, comment
  ``COMMENT_MAX``, at most ``SOURCES_MAX`` sources); an over-long one is a
  ``pydantic.ValidationError`` (a ``ValueError``) naming the field and its bound, never cut.
- Durable: ``append`` returns once the line is written (one ``os.write`` loop on an
  ``O_APPEND`` descriptor, under a thread lock and an exclusive ``flock`` for processes
  sharing the file) and fsync'd (the folder too when the file is new).
- Crash-safe: a crash mid-write (``kill -9``, power) leaves at most a torn last line, without
  its newline. Reading skips every line that is not a whole record (torn, foreign,
  hand-edited), it never fails on one; the next ``append`` ends a torn line first, so the
  torn bytes never swallow the new record.
- Append-only: nothing here rewrites or deletes a record; ``id`` (a uuid4) names one for
  good. The file is never held open between calls, so an operator may move it away (a new
  one starts on the next rating).

Records carry the question and answer texts as the rater saw them (unlike the audit trail,
which hashes questions): feedback is something a user chose to send.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rag.answer.textnorm import has_visible_text
from rag.settings import FeedbackSettings

log = logging.getLogger(__name__)

Rating = Literal["up", "down"]

QUESTION_MAX = 20_000
ANSWER_MAX = 20_000
COMMENT_MAX = 2_000
SOURCES_MAX = 50
#: ids (request, document, parent) and a source's name
ID_MAX = 200
NAME_MAX = 1_000


class FeedbackSource(BaseModel):
    """One source the rated answer showed: its document's name and ids."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: str = Field(
        min_length=1, max_length=NAME_MAX, description="the document's name (as answers give it)"
    )
    document_id: str | None = Field(None, max_length=ID_MAX)
    parent_id: str | None = Field(None, max_length=ID_MAX)
    cited: bool = Field(False, description="the answer cites it (or is attributed to it)")


class Feedback(BaseModel):
    """What a rating says (``POST /v1/feedback``'s body): strictly typed, bounded."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rating: Rating
    question: str = Field(min_length=1, max_length=QUESTION_MAX)
    answer: str = Field("", max_length=ANSWER_MAX, description="the answer's text as shown")
    comment: str = Field("", max_length=COMMENT_MAX)
    request_id: str | None = Field(
        None, max_length=ID_MAX, description="the answer's request id (X-RAG-Request-Id)"
    )
    sources: list[FeedbackSource] = Field(default_factory=list, max_length=SOURCES_MAX)

    @field_validator("question")
    @classmethod
    def _visible(cls, value: str) -> str:
        if not has_visible_text(value):
            raise ValueError("must contain visible text")
        return value


class FeedbackRecord(Feedback):
    """A stored rating: the feedback, its id, when and from whom. Read leniently (unknown
    fields of a later version are ignored), written whole."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str
    time: str = Field(description="ISO 8601, UTC")
    ts: float = Field(description="epoch seconds")
    principal: str | None = None


class FeedbackFull(Exception):
    """The feedback file reached its bound (``RAG_FEEDBACK_MAX_MB``): nothing written."""


class FeedbackStore:
    """One feedback file; thread-safe, and safe for processes sharing it (``flock``).
    Bounded: a rating that would take the file past ``max_bytes`` is refused
    (``FeedbackFull``), so a client cannot fill the disk; nothing stored is dropped."""

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        #: lines the last read skipped (torn or foreign)
        self.skipped = 0

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> FeedbackStore:
        return cls(settings.feedback_path, settings.feedback_max_mb * 1_000_000)

    def append(self, feedback: Feedback, *, principal: str | None = None) -> FeedbackRecord:
        """Store ``feedback`` (validated again: a model built without validation cannot
        slip past the bounds) and return its record once it is on disk. ``OSError`` when
        the file cannot be written: nothing is acknowledged then."""
        checked = Feedback.model_validate(feedback.model_dump(include=set(Feedback.model_fields)))
        now = time.time()
        record = FeedbackRecord(
            **dict(checked),
            id=str(uuid.uuid4()),
            time=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            ts=round(now, 3),
            principal=principal,
        )
        data = (record.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if self.max_bytes is not None and size + len(data) + 1 > self.max_bytes:
                    raise FeedbackFull(
                        f"the feedback file holds {size:,} bytes (bound {self.max_bytes:,})"
                    )
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # end the line a crash tore
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the flock
            if created:
                _fsync_dir(self.path.parent)
        return record

    def records(self) -> Iterator[FeedbackRecord]:
        """Every whole record, oldest first; torn or foreign lines are skipped (counted in
        ``skipped``, logged once per read)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        skipped = 0
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                yield FeedbackRecord.model_validate_json(line)
            except ValidationError:
                skipped += 1
        self.skipped = skipped
        if skipped:
            log.warning("feedback: %d unreadable line(s) skipped in %s", skipped, self.path)

    def read(
        self,
        *,
        since: float | None = None,
        rating: Rating | None = None,
        limit: int | None = None,
    ) -> tuple[list[FeedbackRecord], int]:
        """Matching records oldest first, newest last (the last ``limit`` of them when
        given; ``since`` inclusive, epoch seconds); and how many match."""
        matching = [
            r
            for r in self.records()
            if (since is None or r.ts >= since) and (rating is None or r.rating == rating)
        ]
        kept = matching[max(0, len(matching) - limit) :] if limit is not None else matching
        return kept, len(matching)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_STORES: dict[Path, FeedbackStore] = {}
_LOCK = threading.Lock()


def feedback_store(settings: FeedbackSettings) -> FeedbackStore:
    """The process's one ``FeedbackStore`` for the configured file (one thread lock per
    file; every read goes to the file, so nothing is cached but the lock)."""
    key = settings.feedback_path.absolute()
    with _LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = FeedbackStore(key, settings.feedback_max_mb * 1_000_000)
        return found
