"""Documents carry their access from ingestion: the CLI's --collection/--groups/--users and
``.rag-access.toml`` files are stamped on every passage, parent and record; an unchanged
file with another access list has it changed in place, without re-embedding."""

from __future__ import annotations

import shutil

import pytest

from ingest.__main__ import main
from ingest.files.access import ACCESS_FILE, JobAccess
from ingest.indexer import Indexer
from ingest.outcomes import Outcome
from rag.documents import document_id
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS
from tests.ingest.test_indexer import CountingEmbedder


def stamped(store: QdrantStore) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    """source -> the distinct (collection, acl) of its record, parents and passages."""
    seen: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for record in store.documents.list_documents():
        seen.setdefault(record.source, set()).add((record.collection, tuple(record.acl)))
    for parent in store.documents.iter_parents():
        p = parent.payload
        seen.setdefault(p.source, set()).add((p.collection, tuple(p.acl)))
    for passage in store.documents.iter_passages():
        q = passage.payload
        seen.setdefault(q.source, set()).add((q.collection, tuple(q.acl)))
    return seen


def test_the_cli_flags_stamp_every_passage_parent_and_record(
    tmp_path, monkeypatch, capsys, embedder
):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("release-notes.txt", "Normans.md"):
        shutil.copy(DOCS / name, folder)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    for key in ("RAG_API_URL", "RAG_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    args = [str(folder), "--collection", "hr", "--groups", "hr,execs", "--users", "alice"]
    assert main(args) == 0
    assert "ingested 2" in capsys.readouterr().out
    # Unchanged files, other groups: changed in place, and the summary says so.
    assert main([str(folder), "--collection", "hr", "--groups", "ops"]) == 0
    out = capsys.readouterr().out
    assert "unchanged 2 (access changed 2)" in out and "ingested 0" in out
    assert main([str(folder), "--collection", "hr", "--groups", "h r"]) == 2  # a bad name
    assert "invalid group name" in capsys.readouterr().err

    store = QdrantStore(Settings(data_dir=tmp_path / "data"), embedder.name, embedder.dimension)
    try:
        seen = stamped(store)
        assert sorted(seen) == sorted(
            str((folder / n).resolve()) for n in ("Normans.md", "release-notes.txt")
        )
        # users were not given the second time: kept from the stored document
        assert all(s == {("hr", ("group:ops", "user:alice"))} for s in seen.values()), seen
        records = store.documents.list_documents()
        assert {r.ingested_by for r in records} == {"cli"}
    finally:
        store.close()


@pytest.fixture
def indexer(settings_factory, embedder):
    settings = settings_factory()
    counting = CountingEmbedder(embedder)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    yield Indexer(settings, counting, store), counting, store
    store.close()


def test_an_unchanged_file_with_new_access_is_changed_without_re_embedding(indexer, tmp_path):
    worker, counting, store = indexer
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(DOCS / "release-notes.txt", folder)
    first = worker.run([folder], access=JobAccess(groups=("hr",), owner="ivy"))
    assert first.ingested == 1 and counting.embedded > 0
    embedded, passages = counting.embedded, first.passages
    (folder / ACCESS_FILE).write_text('collection = "legal"\n')  # a file refines the rest

    again = worker.run([folder], access=JobAccess(groups=("execs",), owner="ivy"))
    assert (again.unchanged, again.access_changed, again.ingested) == (1, 1, 0)
    assert again.outcomes[0].state is Outcome.UNCHANGED and again.outcomes[0].access_changed
    assert again.as_dict()["access_changed"] == 1
    assert counting.embedded == embedded  # nothing embedded again
    assert stamped(store) == {
        str((folder / "release-notes.txt").resolve()): {("legal", ("group:execs",))}
    }
    assert store.documents.count_passages() == passages

    same = worker.run([folder], access=JobAccess(groups=("execs",)))
    assert (same.unchanged, same.access_changed) == (1, 0)  # nothing to change
    nothing = worker.run([folder])  # a job that says nothing changes nothing
    assert (nothing.unchanged, nothing.access_changed) == (1, 0)


def test_an_edited_file_keeps_its_access_when_the_job_says_nothing(indexer, tmp_path):
    worker, _, store = indexer
    folder = tmp_path / "docs"
    folder.mkdir()
    note = folder / "note.md"
    note.write_text("# Basalt\n\nBasalt is a fine-grained volcanic rock.\n")
    worker.run([folder], access=JobAccess("geo", ("rocks",), ()))
    note.write_text("# Basalt\n\nBasalt is a dark, fine-grained volcanic rock.\n")
    assert worker.run([folder]).ingested == 1
    assert stamped(store) == {str(note.resolve()): {("geo", ("group:rocks",))}}
    (folder / "new.md").write_text("# Granite\n\nGranite is a coarse-grained rock.\n")
    worker.run([folder])  # a new document without access given: the default policy
    assert stamped(store)[str((folder / "new.md").resolve())] == {("default", ("default",))}


def test_a_malformed_access_file_fails_each_file_under_it_with_one_line(indexer, tmp_path):
    worker, counting, store = indexer
    folder = tmp_path / "docs"
    (folder / "hr").mkdir(parents=True)
    shutil.copy(DOCS / "release-notes.txt", folder / "hr")
    shutil.copy(DOCS / "Normans.md", folder / "hr")
    shutil.copy(DOCS / "reactor-update.eml", folder)
    bad = folder / "hr" / ACCESS_FILE
    bad.write_text('groups = ["hr"]\nreaders = ["all"]\n')
    summary = worker.run([folder], access=JobAccess(groups=("open",)))
    assert summary.ingested == 1 and summary.files_seen == 3  # the access file is not a file
    failed = summary.as_dict()["failed"]
    assert sorted(f["path"] for f in failed) == sorted(
        str(folder / "hr" / n) for n in ("Normans.md", "release-notes.txt")
    )
    assert all(str(bad) in f["error"] and "unknown key 'readers'" in f["error"] for f in failed)
    sources = {r.source for r in store.documents.list_documents()}
    assert sources == {str((folder / "reactor-update.eml").resolve())}  # nothing opened up


def test_an_ingester_may_not_retarget_a_document_it_cannot_read(indexer, tmp_path):
    worker, _, store = indexer
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(DOCS / "release-notes.txt", folder)
    worker.run([folder], access=JobAccess(groups=("execs",), owner="cli"))
    ivy = JobAccess(groups=("ops",), owner="ivy", owner_groups=frozenset({"ops"}))
    summary = worker.run([folder], access=ivy)
    assert summary.as_dict()["failed"] == [
        {
            "path": str(folder / "release-notes.txt"),
            "error": "ivy may not change the access of a stored document it cannot read",
        }
    ]
    record = store.documents.get_document(
        document_id(str((folder / "release-notes.txt").resolve()))
    )
    assert record is not None and record.acl == ["group:execs"]
    # One it can read: changed (to a group of its own).
    worker.run([folder], access=JobAccess(groups=("ops", "execs"), owner="cli"))
    assert worker.run([folder], access=ivy).access_changed == 1
