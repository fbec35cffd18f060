"""Run as a process: store version 1 of a document, then replace it with version 2 and
SIGKILL this process at a chosen moment of the replace (a real crash, for the tests).

Usage: python -m tests.helpers.crash_replace DATA_DIR MOMENT
MOMENT: ``points`` (new points written, not committed), ``commit`` (committed, old points
not yet deleted), ``first`` (a first ingest killed before its commit), ``none`` (no crash).
"""

from __future__ import annotations

import os
import signal
import sys

from rag.documents import document_id
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.rag.store.test_qdrant_store import add_doc

V1 = ["alpha old one", "alpha old two", "alpha old three"]
V2 = ["alpha new one", "alpha new two"]


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def main(data_dir: str, moment: str) -> None:
    store = QdrantStore(Settings(data_dir=data_dir), "test-model", 4)
    if moment != "first":
        add_doc(store, "a", "v1", V1)
    calls = {"put": 0}
    real_put = store.documents._put_record

    def put(record):
        calls["put"] += 1
        if moment in ("points", "first") and calls["put"] == 2:
            die()  # the commit write never happens
        real_put(record)

    store.documents._put_record = put
    if moment == "commit":
        store.documents._delete_other_versions = die
    add_doc(store, "a", "v2", V2)
    print(document_id("a"))


if __name__ == "__main__":
    main(*sys.argv[1:])
