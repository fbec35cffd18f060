"""Erasure that lasts: a deleted document does not come back with its file.

Deleting a document (``DELETE /v1/documents/{id}``) removes its points, but its file would
bring it back at the next ingestion of its folder (the inbox is ingested at every start).
The rule (``erase``):

- A file in the inbox (an upload) is the service's own copy: it is deleted too. The order
  is crash-safe: a tombstone is written first, then the points are deleted, then the file,
  then the tombstone. A process that dies in between leaves the tombstone, which every walk
  honours, and the next start completes the erasure (``resume``).
- A file under ``RAG_INGEST_ROOTS`` belongs to the operator and is left where it is; its
  tombstone stays, and every folder the API or the queue ingests is walked without the file
  while it holds the bytes that were erased. The rule ends for the file when its bytes
  change (a new version: ingested, the tombstone cleared), when it is gone, or when it is
  named on purpose: a job naming the file itself (``POST /v1/ingest`` with its path) or an
  upload onto its name readmits it (``readmit``).

Tombstones are JSON files in ``<inbox>/.erased/``: the inbox is the folder every worker and
producer mounts, and a hidden folder is never walked. One per document, named by a hash of
its ``source`` (the real path of the file, ``ingest.files.identity``), holding the size and
SHA-256 of the bytes erased. ``python -m ingest --local``, the operator's own tool, does not
read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ingest.files.confine import Roots
from ingest.files.identity import canonical_source
from rag.documents import document_id

log = logging.getLogger(__name__)

FOLDER = ".erased"
_CHUNK = 1 << 20

#: Deletes a document's points by its id (``store.documents.delete_document``).
DeletePoints = Callable[[str], object]


@dataclass(frozen=True)
class Tombstone:
    source: str  # the erased document's source: the real path of its file
    size: int
    sha256: str
    erased_at: float


@dataclass(frozen=True)
class Erased:
    """What a delete did besides removing the points."""

    file_removed: bool  # the inbox copy was deleted
    tombstone: bool  # kept: a walk of the file's folder skips it while its bytes are these


def source_of(path: Path | str) -> str:
    """The document source a file is (its real path): what tombstones are keyed by."""
    return canonical_source(os.path.realpath(path))


def _digest(path: Path) -> tuple[int, str] | None:
    """Size and SHA-256 of a regular file (None: gone, unreadable, not a file)."""
    try:
        h = hashlib.sha256()
        size = 0
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return size, h.hexdigest()


class Tombstones:
    """The tombstones kept under one inbox."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.folder = inbox / FOLDER

    def _file(self, source: str) -> Path:
        return self.folder / f"{hashlib.sha256(source.encode()).hexdigest()[:40]}.json"

    def write(self, path: Path) -> Tombstone | None:
        """Record that the file's current bytes are erased (durably, before any point is
        deleted). None when there is nothing to record: the file is gone or unreadable, so
        nothing can bring the erased bytes back."""
        digest = _digest(path)
        if digest is None:
            return None
        stone = Tombstone(source_of(path), digest[0], digest[1], time.time())
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self._file(stone.source)
        tmp = target.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump(asdict(stone), out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
        return stone

    def clear(self, source: str) -> None:
        self._file(source).unlink(missing_ok=True)

    def all(self) -> list[Tombstone]:
        try:
            files = sorted(self.folder.glob("*.json"))
        except OSError:
            return []
        stones = []
        for file in files:
            try:
                stones.append(Tombstone(**json.loads(file.read_text())))
            except (OSError, ValueError, TypeError):
                log.warning("unreadable tombstone %s: ignored", file.name)
        return stones

    def walk_filter(self) -> Callable[[Path], bool]:
        """``erased(path)`` for one walk: the file is one whose erasure stands (a tombstone
        for its real path, and the same bytes). A file whose bytes changed is a new version:
        its tombstone is cleared. Read once, so a walk with no tombstone costs nothing."""
        stones = {stone.source: stone for stone in self.all()}

        def erased(path: Path) -> bool:
            if not stones:
                return False
            stone = stones.get(source_of(path))
            if stone is None:
                return False
            if _holds(path, stone):
                log.info("skipped %s: its document was deleted (tombstone)", stone.source)
                return True
            self.clear(stone.source)
            del stones[stone.source]
            return False

        return erased

    def readmit(self, paths: Iterable[Path | str]) -> None:
        """Files named on purpose (a job naming the file itself, an upload): their erasure
        no longer holds. Folders are left alone (their walk honours the tombstones)."""
        if not self.folder.is_dir():
            return
        for path in paths:
            if Path(path).is_file():
                self.clear(source_of(path))

    def resume(self, delete_points: DeletePoints) -> int:
        """At start, before the inbox is ingested: finish the erasures a dead process left
        half done (inbox files), and drop tombstones whose file is gone. How many erasures
        were finished."""
        inbox = Roots.of([self.inbox])
        finished = 0
        for stone in self.all():
            path = Path(stone.source)
            if not path.exists():
                self.clear(stone.source)
                continue
            if not inbox.contains(stone.source):
                continue  # an operator's file: the tombstone is the whole erasure
            if _holds(path, stone):
                delete_points(document_id(stone.source))
                path.unlink(missing_ok=True)
                finished += 1
            self.clear(stone.source)  # other bytes: a later upload onto the name
        if finished:
            log.warning("finished %d document deletion(s) a stopped process left", finished)
        return finished


def _holds(path: Path, stone: Tombstone) -> bool:
    """The file still holds the erased bytes (the size first: only then is it read)."""
    try:
        if path.stat().st_size != stone.size:
            return False
    except OSError:
        return False
    digest = _digest(path)
    return digest is not None and digest[1] == stone.sha256


def erase(
    source: str, doc_id: str, delete_points: DeletePoints, inbox: Path
) -> tuple[bool, Erased]:
    """Delete a document so that it lasts (see the module notes): whether points were
    deleted, and what else was done. ``source``: the stored document's source."""
    tombstones = Tombstones(inbox)
    path = Path(source)
    stone = tombstones.write(path)  # first: a crash from here on is finished at start
    deleted = bool(delete_points(doc_id))
    if stone is None:
        return deleted, Erased(file_removed=False, tombstone=False)
    if not Roots.of([inbox]).contains(stone.source):
        return deleted, Erased(file_removed=False, tombstone=True)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # the tombstone stays: honoured, and retried at the next start
        log.error("deleting the inbox copy of %s failed: %s", source, exc)
        return deleted, Erased(file_removed=False, tombstone=True)
    tombstones.clear(stone.source)
    return deleted, Erased(file_removed=True, tombstone=False)
