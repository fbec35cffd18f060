"""Symbolic links never lead ingestion out of its allowed roots (a real filesystem)."""

import os

import pytest

from ingest.files.confine import OUTSIDE, NotRegular, OutsideRoots, Roots, read_confined
from ingest.files.walk import WalkProblem, iter_files
from ingest.indexer import Indexer
from ingest.parsing.limits import Limits, ParseFailure, read_checked
from rag.store.qdrant_store import QdrantStore


@pytest.fixture
def tree(tmp_path):
    """allowed/ holds a real file, a link to a folder outside, a link to a file outside, a
    relative link climbing out, and a link that stays inside."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    (allowed / "inside.txt").write_text("The Quillon valve opens at dawn. " * 20)
    (allowed / "sub" / "deep.txt").write_text("Deep inside the allowed root. " * 20)
    (outside / "secret.txt").write_text("Outside secret: the vault code is 4711. " * 20)
    (outside / "nested").mkdir()
    (outside / "nested" / "more.txt").write_text("More outside text. " * 20)
    os.symlink(outside, allowed / "etclink")
    os.symlink("../outside", allowed / "out")
    os.symlink(outside / "secret.txt", allowed / "secret-link.txt")
    os.symlink(allowed / "sub", allowed / "sub-link")  # stays inside (visited once only)
    return allowed, outside


def test_walk_does_not_enter_links_that_leave_the_root(tree):
    allowed, outside = tree
    items = list(iter_files(allowed))
    problems = {p.path.name: p.reason for p in items if isinstance(p, WalkProblem)}
    files = sorted(str(p.relative_to(allowed)) for p in items if not isinstance(p, WalkProblem))
    assert problems == {
        "etclink": OUTSIDE,
        "out": OUTSIDE,
        "sub-link": "symbolic link loop (folder already visited)",
    }
    assert files == ["inside.txt", "secret-link.txt", "sub/deep.txt"]
    assert not any(str(outside) in str(i.path if isinstance(i, WalkProblem) else i) for i in items)


def test_reading_checks_the_opened_file(tree):
    allowed, _ = tree
    roots = Roots.of([allowed])
    assert read_confined(allowed / "inside.txt", roots, 10**6).startswith(b"The Quillon")
    with pytest.raises(OutsideRoots):
        read_confined(allowed / "secret-link.txt", roots, 10**6)
    with pytest.raises(ParseFailure, match=OUTSIDE):
        read_checked(allowed / "secret-link.txt", Limits(max_bytes=10**6), roots)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(NotRegular):
        read_confined(tmp_path / "pipe.txt", Roots.of([tmp_path]), 10**6)


def test_the_indexer_ingests_only_what_lies_inside(tree, settings_factory, embedder):
    allowed, outside = tree
    settings = settings_factory()
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        summary = Indexer(settings, embedder, store).run([allowed])
        sources = sorted(d.source for d in store.documents.list_documents())
        failed = {f.source: f.error for f in summary.failed}
    finally:
        store.close()
    assert all(s.startswith(str(allowed) + "/") for s in sources)
    assert {os.path.basename(s) for s in sources} == {"inside.txt", "deep.txt"}
    assert {path: error for path, error in failed.items() if error == OUTSIDE} == {
        str(allowed / "etclink"): OUTSIDE,
        str(allowed / "out"): OUTSIDE,
        str(allowed / "secret-link.txt"): OUTSIDE,
    }
    assert not any(str(outside) in path for path in failed)


def test_the_api_indexer_roots_bound_every_job(tree, settings_factory, embedder):
    """The API's indexer is confined to its configured roots whatever path a job names."""
    allowed, outside = tree
    settings = settings_factory()
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        indexer = Indexer(settings, embedder, store, allowed_roots=[allowed / "sub"])
        summary = indexer.run([allowed, allowed / "sub-link"])
        sources = [d.source for d in store.documents.list_documents()]
    finally:
        store.close()
    assert sources == [str(allowed / "sub" / "deep.txt")]  # the document is the real file
    assert [o.source for o in summary.outcomes if o.state == "ingested"] == [
        str(allowed / "sub-link" / "deep.txt")  # reported as named
    ]
    assert summary.as_dict()["failed"] == [{"path": str(allowed), "error": OUTSIDE}]
