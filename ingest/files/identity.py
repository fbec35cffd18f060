"""A file's identity in the store: its printable path (the documents' ``source``) and the
hash that says whether what is stored for it is current.

The hash covers the bytes, the ``signature`` of every setting that shapes stored points
(the ``Indexer`` builds it) and ``PIPELINE_VERSION`` for the code that does: a change of any
of the three re-ingests the file once, and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bumped whenever parsing or chunking output changes, so unchanged files re-ingest once.
PIPELINE_VERSION = "2"  # 2: tables as Markdown, OCR


def display_path(path: Path) -> str:
    """A printable, JSON-safe path even for names that are not valid UTF-8."""
    raw = os.fsencode(str(path))
    return raw.decode("utf-8", errors="backslashreplace")


def content_hash(data: bytes, signature: str) -> str:
    """Hash of the bytes and of every setting that shapes stored points."""
    digest = hashlib.sha256(data)
    digest.update(b"\0" + signature.encode() + b"\0" + PIPELINE_VERSION.encode())
    return digest.hexdigest()
