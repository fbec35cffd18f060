"""Ingestion end to end with the real BGE model and embedded Qdrant."""

import shutil
from dataclasses import replace

import pytest

from ingest.indexer import Indexer
from ingest.outcomes import Outcome
from ingest.progress import FileDone, RunStarted, TokensEmbedded
from rag.answer.pipeline import RagPipeline
from rag.documents import document_id
from rag.store.documents import EVERYTHING
from rag.store.qdrant_store import QdrantStore
from tests.helpers.pdf import write_pdf


class CountingEmbedder:
    """The real embedder, counting how many passages it was asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.embedded = 0
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens

    def token_offsets(self, text):
        return self.inner.token_offsets(text)

    def embed_passages(self, texts):
        self.embedded += len(texts)
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)


@pytest.fixture
def setup(settings_factory, embedder, docs_copy):
    settings = settings_factory(parent_tokens=1024, passage_tokens=200)
    counting = CountingEmbedder(embedder)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    indexer = Indexer(settings, counting, store)
    yield indexer, store, counting, docs_copy, settings
    store.close()


def all_payloads(store, collection):
    points, _ = store.client.scroll(collection, limit=10_000, with_payload=True)
    return [p.payload for p in points]


def test_ingest_mixed_folder(setup, embedder):
    indexer, store, counting, docs, settings = setup
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    (docs / "notes.xyz").write_text("unsupported")
    write_pdf(
        docs / "valves.pdf",
        [
            ["Quillon valves", "The Quillon valve was invented in Tartu."],
            ["Page two mentions inspection intervals of 400 hours."],
        ],
    )
    summary = indexer.run([docs])
    failed = {f.path.name: f.error for f in summary.failed}
    assert failed == {
        "bad.pdf": "damaged PDF: Data format error",
        "notes.xyz": "unsupported file type '.xyz'",
    }
    assert summary.files_seen == 8 and summary.ingested == 6
    parents = all_payloads(store, store.names.parents)
    passages = all_payloads(store, store.names.passages)
    assert len(parents) == summary.parents and len(passages) == summary.passages
    assert all(p["tokens"] <= 1024 for p in parents)
    by_parent = {p["parent_index"]: p for p in parents}
    for ps in passages:
        assert {"document_id", "parent_id", "source", "start", "end", "folders"} <= ps.keys()
    parent_texts = {p["document_id"] + str(p["parent_index"]): p for p in parents}
    for ps in passages:
        parent = parent_texts[ps["document_id"] + str(ps["parent_index"])]
        text = parent["text"][ps["start"] - parent["start"] : ps["end"] - parent["start"]]
        assert embedder.count_tokens(text) <= 512
    pdf = [p for p in parents if p["source"].endswith("valves.pdf")]
    assert pdf and pdf[0]["pages"] == [1, 2]
    assert by_parent
    records = {r.source.rsplit("/", 1)[-1]: r for r in store.documents.list_documents()}
    assert records["reactor-update.eml"].title == "Zorblax reactor: commissioning update"


def test_known_questions_find_their_parent(setup):
    indexer, store, _, docs, settings = setup
    indexer.run([docs])
    pipeline = RagPipeline(settings, indexer.embedder, store)
    for question, expected in [
        ("Where was the Zorblax reactor built?", "reactor-update.eml"),
        ("How long is the default session timeout in Kestrel?", "release-notes.txt"),
        ("Which leader of the Normans swore fealty to King Charles III?", "Normans.md"),
    ]:
        hits = pipeline.search(question, top_k=3, scope=EVERYTHING)
        assert hits[0].source.endswith(expected), (question, [h.source for h in hits])


def test_reingest_is_idempotent_and_replaces_and_prunes(setup):
    indexer, store, counting, docs, _ = setup
    first = indexer.run([docs])
    passages_before = store.documents.count_passages()
    counting.embedded = 0

    again = indexer.run([docs])
    assert counting.embedded == 0 and again.unchanged == first.ingested and again.ingested == 0
    assert store.documents.count_passages() == passages_before

    notes = docs / "release-notes.txt"
    notes.write_text("Kestrel 5.0 removes offline mode entirely. " * 5)
    changed = indexer.run([docs])
    assert changed.ingested == 1 and changed.unchanged == first.ingested - 1
    doc = document_id(str(notes))
    texts = [p["text"] for p in all_payloads(store, store.names.parents) if p["document_id"] == doc]
    assert texts and all("offline mode entirely" in t for t in texts)
    assert not any("session timeout" in t for t in texts)  # no stale parents left

    notes.unlink()
    kept = indexer.run([docs])  # without --prune nothing is removed
    assert kept.removed == 0 and store.documents.get_document(doc) is not None
    pruned = indexer.run([docs], prune=True)
    assert pruned.removed == 1 and store.documents.get_document(doc) is None
    assert all(p["document_id"] != doc for p in all_payloads(store, store.names.passages))


def test_failed_reparse_keeps_the_stored_version(setup):
    indexer, store, _, docs, _ = setup
    indexer.run([docs])
    eml = docs / "reactor-update.eml"
    before = store.documents.get_document(document_id(str(eml)))
    eml.write_bytes(b"\x00\x01binary now")
    summary = indexer.run([docs])
    assert [f.path.name for f in summary.failed] == ["reactor-update.eml"]
    assert store.documents.get_document(document_id(str(eml))) == before


def test_interrupted_run_then_rerun_leaves_one_copy(setup):
    indexer, store, counting, docs, settings = setup
    original = store.documents.replace_document
    calls = {"n": 0}

    def crash_midway(record, parents, passages):
        calls["n"] += 1
        if calls["n"] == 2:
            # half the passages reach Qdrant, then the process "dies" before the record
            original(
                replace(record, content_hash="partial"), parents, passages[: len(passages) // 2]
            )
            store.client.delete(store.names.documents, [record.document_id])
            raise KeyboardInterrupt
        return original(record, parents, passages)

    store.documents.replace_document = crash_midway  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        indexer.run([docs])
    store.documents.replace_document = original  # type: ignore[method-assign]
    rerun = indexer.run([docs])
    assert rerun.ingested >= 1
    passages = all_payloads(store, store.names.passages)
    keys = [(p["document_id"], p["parent_index"], p["passage_index"]) for p in passages]
    assert len(keys) == len(set(keys))
    assert len(passages) == sum(r.passages for r in store.documents.list_documents())
    assert indexer.run([docs]).ingested == 0


def test_stage_split_is_reported(setup):
    indexer, _, _, docs, _ = setup
    summary = indexer.run([docs]).as_dict()
    assert set(summary["stages"]) == {"read", "parse", "ocr", "chunk", "embed", "store"}
    assert summary["stages"]["ocr"] == 0  # no scans among the fixtures
    assert summary["stages"]["embed"] > 0 and summary["tokens"] > 0
    shutil.rmtree(docs)


def test_the_next_files_are_parsed_while_a_batch_embeds(setup, monkeypatch):
    """Pipelined: reading, parsing and chunking run ahead in a second thread, so the parser
    works while passages embed (before, each file waited for the previous batch)."""
    import threading
    import time

    import ingest.batching

    indexer, _, counting, docs, _ = setup
    monkeypatch.setattr(ingest.batching, "FLUSH_PASSAGES", 1)  # embed after every file
    embedding = threading.Event()
    overlapped: list[str] = []
    inner_embed, inner_prepare = counting.embed_passages, indexer._prepare

    def slow_embed(texts):
        embedding.set()
        try:
            time.sleep(0.3)
            return inner_embed(texts)
        finally:
            embedding.clear()

    def watched_prepare(path, confinement, documents, *access):
        if embedding.is_set():
            overlapped.append(path.name)
        return inner_prepare(path, confinement, documents, *access)

    monkeypatch.setattr(counting, "embed_passages", slow_embed)
    monkeypatch.setattr(indexer, "_prepare", watched_prepare)
    summary = indexer.run([docs])
    assert summary.ingested == summary.files_seen == 5 and not summary.failed
    assert overlapped, "no file was prepared while a batch was embedding"


def test_a_bug_in_preparing_stops_the_run_instead_of_hanging(setup, monkeypatch):
    indexer, store, _, docs, _ = setup
    calls = []

    def broken(path, confinement, documents, *access):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("bug in preparing")
        return Indexer._prepare(indexer, path, confinement, documents, *access)

    monkeypatch.setattr(indexer, "_prepare", broken)
    with pytest.raises(RuntimeError, match="bug in preparing"):
        indexer.run([docs])
    assert len(store.documents.list_documents()) <= 1  # what was prepared before the bug, at most


def test_a_stop_request_leaves_prefetched_files_for_the_next_run(setup):
    indexer, store, _, docs, _ = setup
    seen = []
    summary = indexer.run(
        [docs],
        progress=seen.append,
        should_stop=lambda: any(isinstance(e, FileDone) for e in seen),
    )
    assert summary.ingested == 1  # the file being worked on is finished, nothing after it
    again = indexer.run([docs])
    assert again.ingested == 4 and again.unchanged == 1  # nothing lost, nothing twice


def test_a_run_reports_typed_outcomes_and_progress_events(setup):
    """The seams: one ``RunStarted``, a ``FileDone`` per file, ``TokensEmbedded`` per batch
    (five small files are one batch, embedded at the end); one outcome per file, whose
    counts are the summary's; ``as_dict`` keeps the ``--json`` keys in their order."""
    indexer, _, _, docs, _ = setup
    (docs / "notes.xyz").write_text("unsupported")
    events = []
    summary = indexer.run([docs], progress=events.append)
    assert events[0] == RunStarted(6)
    assert events[1:7] == [FileDone(str(p)) for p in sorted(docs.iterdir())]
    assert events[7:] == [TokensEmbedded(summary.tokens)] and summary.tokens > 0
    states = {o.path.name: o.state for o in summary.outcomes}
    assert states.pop("notes.xyz") is Outcome.FAILED
    assert set(states.values()) == {Outcome.INGESTED} and len(states) == 5
    assert summary.passages == sum(o.passages for o in summary.outcomes) > 0
    data = summary.as_dict()
    assert list(data) == [
        "files_seen",
        "ingested",
        "unchanged",
        "access_changed",
        "removed",
        "failed",
        "warnings",
        "parents",
        "passages",
        "tokens",
        "seconds",
        "stages",
        "tokens_per_second",
    ]
    assert data["failed"] == [
        {"path": str(docs / "notes.xyz"), "error": "unsupported file type '.xyz'"}
    ]
    assert (data["ingested"], data["files_seen"], data["warnings"]) == (5, 6, [])

    again = []
    rerun = indexer.run([docs], progress=again.append)
    assert again == [RunStarted(6)] + events[1:7]  # nothing embedded: no TokensEmbedded
    assert rerun.unchanged == 5 and rerun.ingested == 0
