"""Saving uploaded files into the inbox: safe names, allowed types, size limit, all or none.

Every name of a request is checked before any byte is written; every file is then streamed
to a hidden temporary file in the inbox (the ingestion walk skips hidden files), and only
when all of them passed their size checks are they moved to their names. A name that is
already taken is never overwritten silently: the same bytes are recognised as unchanged,
other bytes get a free name (``report-2.pdf``), and ``replace=true`` overwrites on purpose.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal

from fastapi import UploadFile
from pydantic import BaseModel

from api.errors import APIError
from ingest.parsing.formats import SUPPORTED

_CHUNK = 1 << 20
_TEMP_PREFIX = ".upload-"


class StoredFile(BaseModel):
    filename: str  # as the client named it
    path: str  # where it is stored (and what the job ingests)
    outcome: Literal["new", "renamed", "replaced", "unchanged"]


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
) -> list[StoredFile]:
    """All files of one request, or none of them (see the module notes)."""
    names = [safe_name(f.filename) for f in files]
    twice = sorted(n for n, k in Counter(n.casefold() for n in names).items() if k > 1)
    if twice:
        raise APIError(
            422, "duplicate_filename", f"the request names {twice[0][:100]!r} more than once"
        )
    inbox.mkdir(parents=True, exist_ok=True)
    spooled: list[tuple[Path, str]] = []
    try:
        for upload, name in zip(files, names):
            spooled.append(await _spool(upload, inbox, max_bytes, name))
        return [
            _place(tmp, digest, inbox, name, replace) for (tmp, digest), name in zip(spooled, names)
        ]
    finally:
        for tmp, _digest in spooled:
            tmp.unlink(missing_ok=True)  # placed files are hard links: the temp name goes


async def _spool(upload: UploadFile, inbox: Path, max_bytes: int, name: str) -> tuple[Path, str]:
    fd, tmp = tempfile.mkstemp(dir=inbox, prefix=_TEMP_PREFIX)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(_CHUNK):
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
    return Path(tmp), digest.hexdigest()


def _same_bytes(path: Path, digest: str) -> bool:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == digest


def _place(tmp: Path, digest: str, inbox: Path, name: str, replace: bool) -> StoredFile:
    target = inbox / name
    if replace:
        existed = target.exists()
        os.replace(tmp, target)
        return StoredFile(
            filename=name, path=str(target.resolve()), outcome="replaced" if existed else "new"
        )
    stem, suffix = Path(name).stem, Path(name).suffix
    for attempt in range(1, 1000):
        candidate = target if attempt == 1 else inbox / f"{stem}-{attempt}{suffix}"
        try:
            os.link(tmp, candidate)  # fails if the name is taken: no overwrite, no race
        except FileExistsError:
            if _same_bytes(candidate, digest):
                return StoredFile(filename=name, path=str(candidate.resolve()), outcome="unchanged")
            continue
        return StoredFile(
            filename=name,
            path=str(candidate.resolve()),
            outcome="new" if attempt == 1 else "renamed",
        )
    raise APIError(409, "name_taken", f"{name[:100]}: no free name left in the inbox")


def inbox_has_files(inbox: Path) -> bool:
    """Something waits in the inbox (an upload saved just before a stop): hidden files
    (our temporaries) aside; an unreadable inbox counts as empty."""
    try:
        return any(not p.name.startswith(".") for p in inbox.iterdir())
    except OSError:
        return False


def remove_stale_temporaries(inbox: Path, older_than_s: float = 3600.0) -> int:
    """Temporary files of uploads cut short by a crash (at start-up)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for tmp in inbox.glob(f"{_TEMP_PREFIX}*") if inbox.is_dir() else []:
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    return removed
