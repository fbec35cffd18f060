"""Parsing is bounded: zip bombs are refused unopened, a runaway parse is killed at the time
or memory limit (a real child process, really killed), and the rest of the job goes on."""

import os
import shutil

import pytest

from ingest.files.identity import content_hash
from ingest.indexer import Indexer
from ingest.parsing.limits import Limits, ParseFailure, read_checked
from ingest.parsing.sandbox import ParseSandbox
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS
from tests.helpers.docx import write_compressible_docx, write_paragraphs_docx

LOOSE = dict(max_bytes=10**8, max_archive_ratio=1e6)  # let a bomb reach the parser


@pytest.fixture
def sandbox():
    box = ParseSandbox()
    yield box
    box.close()


def parse(box, path, **limits):
    data = read_checked(path, Limits(**{**LOOSE, **limits}))
    return box.parse(path, data, content_hash(data, "t"), Limits(**{**LOOSE, **limits}))


def test_zip_bomb_is_refused_before_parsing(tmp_path, sandbox):
    bomb = write_compressible_docx(tmp_path / "bomb.docx", 200_000)  # 21 KB -> 7 MB of XML
    assert bomb.stat().st_size < 30_000
    with pytest.raises(ParseFailure, match=r"inflates \d+x .* over the 100x limit"):
        parse(sandbox, bomb, max_archive_ratio=100)
    with pytest.raises(ParseFailure, match="inflates to 7 MB, over the 1 MB limit"):
        parse(sandbox, bomb, max_archive_bytes=1_000_000)
    assert sandbox.restarts == 0  # refused by reading the zip directory only


def test_runaway_parse_is_killed_and_the_next_file_parses(tmp_path, sandbox):
    slow = write_compressible_docx(tmp_path / "slow.docx", 200_000)
    good = write_paragraphs_docx(tmp_path / "good.docx", ["The Quillon valve opens at dawn."])
    parse(sandbox, good)  # the child is up
    pid = sandbox._proc.pid
    with pytest.raises(ParseFailure, match=r"parsing took longer than 2 s; stopped"):
        parse(sandbox, slow, timeout_s=2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the runaway child is gone, not left spinning
    doc = parse(sandbox, good)
    assert [e.text for e in doc.elements] == ["The Quillon valve opens at dawn."]
    assert sandbox.restarts == 1


def test_memory_limit_kills_the_parser(tmp_path, sandbox):
    doc = write_paragraphs_docx(tmp_path / "doc.docx", ["text"] * 2000)
    with pytest.raises(ParseFailure, match="used more than 64 MB of memory"):
        parse(sandbox, doc, max_memory_mb=64)  # the child alone is larger than that


def test_output_limits(tmp_path, sandbox):
    doc = write_paragraphs_docx(tmp_path / "many.docx", [f"Line {i}." for i in range(500)])
    with pytest.raises(ParseFailure, match="500 elements, over the 100 limit"):
        parse(sandbox, doc, max_elements=100)
    with pytest.raises(ParseFailure, match="characters of text, over the 1,000 limit"):
        parse(sandbox, doc, max_chars=1000)


def test_a_runaway_file_fails_alone_in_a_job(tmp_path, settings_factory, embedder):
    folder = tmp_path / "in"
    folder.mkdir()
    write_compressible_docx(folder / "runaway.docx", 200_000)
    shutil.copy(DOCS / "release-notes.txt", folder)
    settings = settings_factory(parse_timeout_s=2, parse_max_archive_ratio=1e6)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        summary = Indexer(settings, embedder, store).run([folder])
    finally:
        store.close()
    assert summary.ingested == 1
    assert summary.as_dict()["failed"] == [
        {
            "path": str(folder / "runaway.docx"),
            "error": "parsing took longer than 2 s; stopped (RAG_PARSE_TIMEOUT_S)",
        }
    ]
