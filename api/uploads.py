"""Saving uploaded files into the inbox: safe names, allowed types, size limit, all or none.

Every name of a request is checked before any byte is written; every file is then streamed
to a hidden temporary file in the inbox (the ingestion walk skips hidden files), and only
when all of them passed their size checks are they moved to their names. A name that is
already taken is never overwritten silently: the same bytes are recognised as unchanged
(``saved`` instead when no document holds them, a deleted one's file or one not ingested
yet: they are ingested, ``restate_unstored``), other bytes get a free name
(``report-2.pdf``), and ``replace=true`` overwrites on purpose (a file or a link; a name
taken by a folder or anything else is a 409 ``name_taken``). A failing inbox is a 503 (507
when full), never a 500. Clients see names relative to the inbox; the absolute paths go to
the job and the log.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from fastapi import UploadFile
from pydantic import BaseModel

from api.errors import APIError
from ingest.parsing.formats import SUPPORTED

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_TEMP_PREFIX = ".upload-"

UploadOutcome = Literal["new", "renamed", "replaced", "unchanged", "saved"]


class StoredFile(BaseModel):
    filename: str  # as the client named it
    path: str  # its name in the inbox (RAG_INBOX_DIR): the server's own paths stay inside
    outcome: UploadOutcome


@dataclass(frozen=True)
class Saved:
    """What one request stored: ``files`` for the client, ``paths`` (absolute) for the
    ingestion job and the log."""

    files: list[StoredFile]
    paths: list[str]


def safe_name(filename: str | None) -> str:
    """The client's name if it is a plain, visible file name with a supported extension."""
    name = unicodedata.normalize("NFC", filename or "")
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise APIError(
            422,
            "invalid_filename",
            f"file name {name[:100]!r} must be a plain name without folders",
        )
    if name.startswith(".") or any(unicodedata.category(c).startswith("C") for c in name):
        raise APIError(
            422, "invalid_filename", "file name must not be hidden or contain control characters"
        )
    if len(name.encode()) > 255:
        raise APIError(422, "invalid_filename", "file name is longer than 255 bytes")
    if Path(name).suffix.lower() not in SUPPORTED:
        allowed = ", ".join(sorted(SUPPORTED))
        raise APIError(
            422,
            "unsupported_type",
            f"file type {Path(name).suffix or '(none)'!r} is not accepted; allowed: {allowed}",
        )
    return name


async def save_uploads(
    files: list[UploadFile], inbox: Path, max_bytes: int, replace: bool = False
) -> Saved:
    """All files of one request, or none of them (see the module notes). The names are
    checked here; every read, write, hash and link runs in a worker thread, never on the
    event loop (the parts are already parsed into spooled files when a handler runs)."""
    names = [safe_name(f.filename) for f in files]
    twice = sorted(n for n, k in Counter(n.casefold() for n in names).items() if k > 1)
    if twice:
        raise APIError(
            422, "duplicate_filename", f"the request names {twice[0][:100]!r} more than once"
        )
    parts = [(f.file, name) for f, name in zip(files, names)]
    return await asyncio.to_thread(_save_all, parts, inbox, max_bytes, replace)


def _save_all(
    parts: list[tuple[BinaryIO, str]], inbox: Path, max_bytes: int, replace: bool
) -> Saved:
    spooled: list[_Spooled] = []
    try:
        try:
            inbox.mkdir(parents=True, exist_ok=True)
            if replace:  # all or none: a name replace must not overwrite, before any write
                for _, name in parts:
                    _replaceable(inbox / name, name)
            for source, name in parts:
                spooled.append(_spool(source, inbox, max_bytes, name))
            placed = [_place(tmp, inbox, name, replace) for tmp, (_, name) in zip(spooled, parts)]
        except OSError as exc:
            raise _inbox_error(exc) from exc
    finally:
        for tmp in spooled:
            tmp.path.unlink(missing_ok=True)  # placed files are hard links: the temp name goes
    paths = [str(path) for _, path in placed]
    log.info("uploads saved: %s", ", ".join(paths))
    return Saved(files=[file for file, _ in placed], paths=paths)


@dataclass(frozen=True)
class _Spooled:
    path: Path  # the hidden temporary file in the inbox
    digest: str
    size: int


def _spool(source: BinaryIO, inbox: Path, max_bytes: int, name: str) -> _Spooled:
    fd, tmp = tempfile.mkstemp(dir=inbox, prefix=_TEMP_PREFIX)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            source.seek(0)
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise APIError(
                        413,
                        "too_large",
                        f"{name[:100]}: file is over the {max_bytes / 1e6:.1f} MB upload limit",
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise APIError(422, "empty_file", f"{name[:100]}: the uploaded file is empty")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _Spooled(Path(tmp), digest.hexdigest(), size)


def _same_bytes(path: Path, spooled: _Spooled) -> bool:
    """``path`` is a regular file (not a link, folder or pipe) holding the spooled bytes;
    sizes are compared first, so only a file of the same size is read and hashed."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != spooled.size:
            return False
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == spooled.digest


def _place(tmp: _Spooled, inbox: Path, name: str, replace: bool) -> tuple[StoredFile, Path]:
    target = inbox / name
    if replace:
        existed = _replaceable(target, name)
        try:
            os.replace(tmp.path, target)
        except (IsADirectoryError, NotADirectoryError) as exc:  # made one meanwhile
            raise _not_a_file(name) from exc
        return _stored(name, target, "replaced" if existed else "new")
    stem, suffix = Path(name).stem, Path(name).suffix
    for attempt in range(1, 1000):
        candidate = target if attempt == 1 else inbox / f"{stem}-{attempt}{suffix}"
        try:
            os.link(tmp.path, candidate)  # fails if the name is taken: no overwrite, no race
        except FileExistsError:
            if _same_bytes(candidate, tmp):
                return _stored(name, candidate, "unchanged")
            continue
        return _stored(name, candidate, "new" if attempt == 1 else "renamed")
    raise APIError(409, "name_taken", f"{name[:100]}: no free name left in the inbox")


def _replaceable(target: Path, name: str) -> bool:
    """Whether ``target`` exists; a 409 when it is something ``replace`` must not overwrite
    (a folder, a pipe...: only a file or a link is replaced)."""
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return False
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise _not_a_file(name)
    return True


def _stored(name: str, path: Path, outcome: UploadOutcome) -> tuple[StoredFile, Path]:
    return StoredFile(filename=name, path=path.name, outcome=outcome), path.resolve()


def restate_unstored(saved: Saved, stored: Callable[[str], bool]) -> Saved:
    """``unchanged`` means the inbox holds these bytes *and* they are stored; a file whose
    bytes are in the inbox but not in the store (``stored(path)`` false: its document was
    deleted, or is not ingested yet) is ``saved``: its job ingests it."""
    files = [
        f.model_copy(update={"outcome": "saved"})
        if f.outcome == "unchanged" and not stored(path)
        else f
        for f, path in zip(saved.files, saved.paths)
    ]
    return Saved(files=files, paths=saved.paths)


def _not_a_file(name: str) -> APIError:
    return APIError(
        409,
        "name_taken",
        f"{name[:100]}: the name is taken in the inbox by something that is not a file "
        "(a folder?), which replace=true does not overwrite; upload it under another name",
    )


def _inbox_error(exc: OSError) -> APIError:
    """The inbox could not be written (full disk, permissions): the client learns that
    much; the path and the system's error go to the log only."""
    log.error("upload: writing the inbox failed: %s", exc)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return APIError(507, "inbox_full", "no space left for uploads; nothing was saved")
    return APIError(
        503, "inbox_unavailable", "the upload inbox cannot be written; nothing was saved"
    )


def remove_stale_temporaries(inbox: Path, older_than_s: float = 3600.0) -> int:
    """Temporary files of uploads cut short by a crash (at start-up)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for tmp in inbox.rglob(f"{_TEMP_PREFIX}*") if inbox.is_dir() else []:  # users/ too
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    return removed
