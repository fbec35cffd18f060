"""A file's identity in the store: its printable path (the documents' ``source``) and the
hash that says whether what is stored for it is current.

A document is the resolved file: its ``source`` (and so its id, ``rag.documents.document_id``)
is the real path of the file opened (``ingest.files.confine.ConfinedFile.real``), so every
alias (a symbolic link inside the roots, ``a/../a/x.txt``, ``/proc/self/root/...``) is the
same document. For a path with no link and no ``..`` the real path is the path itself, so the
ids of documents stored before this rule are unchanged. Run outcomes keep the path as named.

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


def canonical_source(real: str) -> str:
    """The ``source`` of the document a file is: its real path, printable."""
    return display_path(Path(real))


def content_hash(data: bytes, signature: str) -> str:
    """Hash of the bytes and of every setting that shapes stored points."""
    digest = hashlib.sha256(data)
    digest.update(b"\0" + signature.encode() + b"\0" + PIPELINE_VERSION.encode())
    return digest.hexdigest()
