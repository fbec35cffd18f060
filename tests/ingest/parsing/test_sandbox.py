"""Parsing is bounded: zip bombs are refused unopened, a runaway parse is killed at the time
or memory limit (a real child process, really killed), the rest of the job goes on, and no
parser outlives the process that owns it."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ingest.files.identity import content_hash
from ingest.indexer import Indexer
from ingest.parsing.limits import Limits, ParseFailure, read_checked
from ingest.parsing.sandbox import ParseSandbox
from rag.store.qdrant_store import QdrantStore
from tests.conftest import DOCS, ROOT
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


_OWNER = """
import sys
from pathlib import Path
from ingest.parsing.limits import Limits
from ingest.parsing.sandbox import ParseSandbox

box = ParseSandbox()
box.parse(Path("warm.txt"), b"warm up", "h", Limits(max_bytes=10))
print(box._proc.pid, flush=True)
slow = Path(sys.argv[1])
box.parse(slow, slow.read_bytes(), "h", Limits(10**8, max_archive_ratio=1e6, timeout_s=600))
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone_within(pids: list[int], seconds: float) -> float:
    started = time.monotonic()
    while any(_alive(p) for p in pids) and time.monotonic() - started < seconds:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), f"still running: {[p for p in pids if _alive(p)]}"
    return time.monotonic() - started


def test_the_parser_dies_with_its_owner_even_on_sigkill(tmp_path):
    """A worker killed with -9 mid-parse leaves no parser running (the parse would go on
    for minutes, sending nothing to the dead owner)."""
    slow = write_compressible_docx(tmp_path / "slow.docx", 400_000)
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(slow)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    child = 0
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        time.sleep(1.0)  # well into the parse
        assert _alive(child)
        owner.kill()
        owner.wait()
        took = _gone_within([child], 5)
        print(f"parser gone {took:.2f} s after its owner's kill -9")
    finally:
        owner.kill()
        owner.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


_STARTER = """
import os, subprocess, threading
from functools import partial
from ingest.parsing.processes import die_with_parent

def run():  # as pytesseract runs Tesseract: from a thread, which waits for it
    process = subprocess.Popen(["sleep", "600"], preexec_fn=partial(die_with_parent, os.getpid()))
    print(process.pid, flush=True)
    process.wait()

threading.Thread(target=run).start()
"""


def test_tesseract_dies_with_the_parser_even_on_sigkill():
    """Tesseract is started with ``die_with_parent``: killed with -9, the parser leaves no
    OCR process running (the kernel kills them: PR_SET_PDEATHSIG)."""
    from ingest.parsing.ocr import _tesseract
    from ingest.parsing.processes import die_with_parent

    runner = _tesseract().pytesseract
    assert runner.subprocess_args()["preexec_fn"].func is die_with_parent
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    started = 0
    try:
        assert starter.stdout is not None
        started = int(starter.stdout.readline())
        assert _alive(started)
        starter.kill()
        starter.wait()
        _gone_within([started], 3)
    finally:
        starter.kill()
        starter.wait()
        if started and _alive(started):
            os.kill(started, signal.SIGKILL)
