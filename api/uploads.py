"""Saving uploaded files into the inbox: safe names, allowed types, size limit, atomic."""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path

from fastapi import UploadFile

from api.errors import APIError
from ingest.parsing import SUPPORTED

_CHUNK = 1 << 20


def safe_name(filename: str | None) -> str:
    """The client's name if it is a plain, visible file name with a supported extension."""
    name = unicodedata.normalize("NFC", filename or "")
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise APIError(422, "invalid_filename",
                       f"file name {name[:100]!r} must be a plain name without folders")
    if name.startswith(".") or any(unicodedata.category(c).startswith("C") for c in name):
        raise APIError(422, "invalid_filename",
                       "file name must not be hidden or contain control characters")
    if len(name.encode()) > 255:
        raise APIError(422, "invalid_filename", "file name is longer than 255 bytes")
    if Path(name).suffix.lower() not in SUPPORTED:
        allowed = ", ".join(sorted(SUPPORTED))
        raise APIError(422, "unsupported_type",
                       f"file type {Path(name).suffix or '(none)'!r} is not accepted; allowed: "
                       f"{allowed}")
    return name


async def save_upload(upload: UploadFile, inbox: Path, max_bytes: int) -> Path:
    """Stream to a temp file in the inbox, then rename over the final name (never outside)."""
    name = safe_name(upload.filename)
    inbox.mkdir(parents=True, exist_ok=True)
    target = (inbox / name).resolve()
    if target.parent != inbox.resolve():
        raise APIError(422, "invalid_filename", "file name escapes the inbox")
    fd, tmp = tempfile.mkstemp(dir=inbox, prefix=".upload-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise APIError(413, "too_large",
                                   f"file is over the {max_bytes / 1e6:.1f} MB upload limit")
                out.write(chunk)
        if size == 0:
            raise APIError(422, "empty_file", "the uploaded file is empty")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
