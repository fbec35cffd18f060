"""A queued job's access (``--collection/--groups``) travels in its task payloads and the
worker process stamps it; a task without access fields (an earlier version's) still runs."""

from __future__ import annotations

import json
import subprocess
import sys

from ingest.queue.producer import Producer
from rag.store.qdrant_store import QdrantStore
from tests.conftest import ROOT
from tests.helpers.queue import (
    WorkerProcess,
    as_settings,
    board_for,
    queue_env,
    queue_settings,
    wait_done,
    write_corpus,
)


def test_a_queued_job_with_collection_and_groups_stores_them(redis_server, tmp_path, embedder):
    shared = tmp_path / "shared"
    hr = write_corpus(shared / "hr", 3, words=60, seed=3)
    plain = write_corpus(shared / "plain", 1, words=60, seed=4)
    env = queue_settings(tmp_path, redis_server, shared)
    cli_env = queue_env(env)
    worker = WorkerProcess(cli_env, tmp_path / "worker.log")
    worker.start()
    try:
        args = [str(shared / "hr"), "--collection", "hr", "--groups", "hr,execs", "--no-wait"]
        queued = subprocess.run(
            [sys.executable, "-m", "ingest", *args, "--json"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert queued.returncode == 0, queued.stderr
        board = board_for(env)
        assert wait_done(board, json.loads(queued.stdout)["job_id"]).counts["done"] == 3
        producer = Producer(as_settings(env))
        try:  # no access given: the task carries none, as an earlier version's did
            old = producer.submit([shared / "plain"])
        finally:
            producer.close()
        assert wait_done(board, old.job_id).counts["done"] == 1
    finally:
        worker.stop()
    store = QdrantStore(as_settings(env), embedder.name, embedder.dimension)
    try:
        want = {str(p.resolve()): ("hr", ["group:execs", "group:hr"]) for p in hr}
        want[str(plain[0].resolve())] = ("default", ["default"])
        records = {r.source: (r.collection, r.acl) for r in store.documents.list_documents()}
        assert records == want
        assert {r.ingested_by for r in store.documents.list_documents()} == {"cli", ""}
        for passage in store.documents.iter_passages():
            p = passage.payload
            assert (p.collection, p.acl) == want[p.source]
        for parent in store.documents.iter_parents():
            q = parent.payload
            assert (q.collection, q.acl) == want[q.source]
    finally:
        store.close()
