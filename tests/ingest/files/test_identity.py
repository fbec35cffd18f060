"""One file, one document: every alias of a file (a link, ``..``, ``/proc/self/root``) is the
document its real path is, and hard links are refused unless allowed (a real filesystem)."""

import os
from pathlib import Path

import pytest

import ingest.indexer as indexer_module
from ingest.files.confine import ConfinedFile, HardLinked, Roots, read_confined
from ingest.indexer import Indexer
from ingest.outcomes import Outcome
from ingest.parsing.limits import read_checked_file
from rag.documents import document_id
from rag.store.qdrant_store import QdrantStore

TEXT = "The Quillon valve opens at dawn and closes at dusk. " * 10


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(TEXT)
    return root


@pytest.fixture
def store(settings_factory, embedder):
    settings = settings_factory()
    opened = QdrantStore(settings, embedder.name, embedder.dimension)
    yield settings, opened
    opened.close()


def aliases(real: Path) -> list[Path]:
    """Other names of ``real``: through a folder and back, through the root of procfs."""
    return [
        real.parent / "sub" / ".." / real.name,
        Path("/proc/self/root") / str(real).lstrip("/"),
    ]


def test_an_alias_of_a_stored_file_is_unchanged_not_a_second_document(folder, store, embedder):
    settings, opened = store
    real = folder / "a.txt"
    indexer = Indexer(settings, embedder, opened)
    assert indexer.run([folder]).ingested == 1
    for alias in aliases(real):
        summary = indexer.run([alias])
        assert [(o.source, o.state) for o in summary.outcomes] == [
            (str(alias.absolute()), Outcome.UNCHANGED)  # reported as named
        ], alias
    records = opened.documents.list_documents()
    assert [r.source for r in records] == [str(real)]
    assert records[0].document_id == document_id(str(real))  # a plain path keeps its id


def test_an_alias_first_is_stored_under_the_real_path(folder, store, embedder):
    """Confined to the root as the API is: a job naming an alias stores the real file."""
    settings, opened = store
    real = folder / "a.txt"
    indexer = Indexer(settings, embedder, opened, allowed_roots=[folder])
    for alias in aliases(real):
        indexer.run([alias])
    assert indexer.run([folder]).unchanged == 1
    assert [r.source for r in opened.documents.list_documents()] == [str(real)]


def test_two_names_of_one_file_in_a_run_store_it_once(folder, store, embedder):
    settings, opened = store
    os.symlink(folder / "a.txt", folder / "link.txt")  # a link that stays inside
    summary = Indexer(settings, embedder, opened).run([folder])
    outcomes = {Path(o.source).name: o for o in summary.outcomes}
    assert outcomes["a.txt"].state == Outcome.INGESTED
    assert outcomes["link.txt"].state == Outcome.UNCHANGED
    assert outcomes["link.txt"].warnings == (f"the same file as {folder / 'a.txt'} (stored once)",)
    assert [r.source for r in opened.documents.list_documents()] == [str(folder / "a.txt")]


def test_prune_removes_a_document_stored_under_an_alias(folder, store, embedder, monkeypatch):
    """A store filled before documents were real paths holds aliases: ``--prune`` drops
    them once the real path is stored, and keeps everything else."""
    settings, opened = store
    real = folder / "a.txt"
    alias = folder / "sub" / ".." / "a.txt"

    def as_named(path, limits, roots=None):  # the old rule: the document is the name
        read = read_checked_file(path, limits, roots)
        return ConfinedFile(read.data, str(path.absolute()))

    indexer = Indexer(settings, embedder, opened)
    with monkeypatch.context() as patch:
        patch.setattr(indexer_module, "read_checked_file", as_named)
        indexer.run([alias])
    assert [r.source for r in opened.documents.list_documents()] == [str(alias)]
    summary = indexer.run([folder], prune=True)
    assert summary.ingested == 1 and summary.removed == 1
    assert [r.source for r in opened.documents.list_documents()] == [str(real)]


def test_hard_links_are_refused_unless_allowed(tmp_path, settings_factory, embedder):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("Outside secret: the vault code is 4711. " * 20)
    os.link(outside / "secret.txt", allowed / "hard.txt")  # no target to resolve
    with pytest.raises(HardLinked, match="2 hard links"):
        read_confined(allowed / "hard.txt", Roots.of([allowed]), 10**6)
    assert read_confined(allowed / "hard.txt", Roots.of([allowed]), 10**6, allow_hardlinks=True)

    for allow, expected in [(False, Outcome.FAILED), (True, Outcome.INGESTED)]:
        settings = settings_factory(ingest_allow_hardlinks=allow)
        store = QdrantStore(settings, embedder.name, embedder.dimension)
        try:
            summary = Indexer(settings, embedder, store).run([allowed])
        finally:
            store.close()
        [outcome] = summary.outcomes
        assert outcome.state == expected
        if not allow:
            assert outcome.error == (
                "file has 2 hard links (another name may lie outside the allowed roots); "
                "refused (RAG_INGEST_ALLOW_HARDLINKS=true reads it)"
            )
