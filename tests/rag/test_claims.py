"""File leases in the store (rag/claims.py): one holder at a time, expiry, release, and the
factory that gives leases only where several processes share a store."""

import time

from rag.claims import FileClaims, claims_for
from rag.documents import document_id
from rag.store import QdrantStore


def test_a_held_claim_is_skipped_and_an_expired_one_taken(settings_factory):
    store = QdrantStore(settings_factory(), "test-model", 4)
    try:
        a = FileClaims(store, ttl_seconds=0.5, worker_id="a")
        b = FileClaims(store, ttl_seconds=0.5, worker_id="b")
        doc = document_id("/docs/release-notes.txt")
        assert a.acquire(doc) and not b.acquire(doc)
        assert a.acquire(doc)  # renewing one's own lease
        time.sleep(0.6)
        assert b.acquire(doc)
        a.release(doc)  # not a's any more: a release by a must not free b's lease
        assert not a.acquire(doc)
        b.release(doc)
        assert a.acquire(doc)
    finally:
        store.close()


def test_leases_only_where_processes_share_the_store(settings_factory):
    store = QdrantStore(settings_factory(), "test-model", 4)
    try:
        assert claims_for(settings_factory(), store) is None  # embedded: one process
        shared = settings_factory(qdrant_url="http://127.0.0.1:6333")
        assert isinstance(claims_for(shared, store), FileClaims)
    finally:
        store.close()
