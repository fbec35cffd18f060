"""Parse bounds without holes: zip bombs split into many parts, scans of blank pages, a parse
that keeps making progress for ever, pages with more pixels than their bytes suggest, and
the memory of the parser's Tesseract processes (real files, real Tesseract)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from ingest.parsing.archives import check_archive
from ingest.parsing.dispatch import parse_file
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.ocr import OcrConfig, render_pdf_pages
from ingest.parsing.processes import rss_mb, tree_rss_mb
from ingest.parsing.sandbox import ParseSandbox
from tests.helpers.bounds import blank_frames, pdf_of_pages, write_many_part_xlsx
from tests.helpers.pdf import write_pdf
from tests.helpers.scans import save_tiff

LIMITS = Limits(max_bytes=50_000_000)
FAST_OCR = OcrConfig(dpi=72)  # blank pages OCR in a fraction of a second at 72 dpi


def test_a_bomb_split_into_parts_under_1_mb_is_refused_from_the_directory(tmp_path):
    """150 parts of 0.99 MB at ~1000x: no part is over 1 MB, together they are a bomb; an
    incompressible part beside them does not hide it."""
    for media in (0, 5_000_000):
        xlsx = write_many_part_xlsx(tmp_path / f"parts-{media}.xlsx", 150, 990_000, media)
        started = time.perf_counter()
        with pytest.raises(ParseFailure) as err:
            check_archive(xlsx.read_bytes(), "xlsx", LIMITS)
        assert time.perf_counter() - started < 1.0  # the directory only
        assert str(err.value).startswith("XLSX has 150 parts that inflate ")
        assert str(err.value).endswith(" MB), over the 100x limit (a zip bomb?)"), err.value
    with pytest.raises(ParseFailure, match="150 parts that inflate"):  # before any parser
        parse_file(xlsx, xlsx.read_bytes(), "h", LIMITS)


def test_small_very_compressible_parts_are_still_accepted(tmp_path):
    """Under 1 MB over the ratio in all (a few small repetitive parts) is normal."""
    xlsx = write_many_part_xlsx(tmp_path / "small.xlsx", 9, 100_000)
    check_archive(xlsx.read_bytes(), "xlsx", LIMITS)


def test_a_scan_of_blank_pages_fails_after_a_run_of_them(tmp_path):
    """500 blank pages (a 62 KB PDF) stop after the allowed run, in seconds."""
    path = tmp_path / "blank.pdf"
    path.write_bytes(pdf_of_pages([(612, 792)] * 500))
    limits = Limits(max_bytes=10**7, ocr=replace(FAST_OCR, max_blank_run=3))
    started = time.monotonic()
    with pytest.raises(ParseFailure) as err:
        parse_file(path, path.read_bytes(), "h", limits)
    took = time.monotonic() - started
    assert str(err.value) == (
        "pages 1-4: 4 pages in a row without text OCR could use (blank, or under "
        "RAG_OCR_MIN_CONFIDENCE); stopped, over the 3 limit (RAG_OCR_MAX_BLANK_RUN)"
    )
    assert took < 30, took
    print(f"500 blank pages: failed after {took:.1f} s")


def test_a_scan_of_pages_without_words_fails_after_a_run_of_them(tmp_path):
    """Pages with a mark but no word go through Tesseract, and count towards the run."""
    tiff = save_tiff(blank_frames(60, mark=True), tmp_path / "marks.tiff")
    limits = Limits(max_bytes=10**7, ocr=replace(FAST_OCR, max_blank_run=3))
    with pytest.raises(ParseFailure, match=r"^pages 1-4: 4 pages in a row without text"):
        parse_file(tiff, tiff.read_bytes(), "h", limits)


def test_blank_pages_between_text_pages_are_not_a_run(tmp_path):
    """A blank scanned page after each text page (chapter ends) never makes a run."""
    text = ["A page of real text with its own text layer, number {n}."]
    pages = [[line.format(n=n) for line in text] if n % 2 else [] for n in range(1, 7)]
    path = write_pdf(tmp_path / "chapters.pdf", pages)
    limits = Limits(max_bytes=10**7, ocr=replace(FAST_OCR, max_blank_run=1))
    doc = parse_file(path, path.read_bytes(), "h", limits)
    assert sorted({e.page for e in doc.elements}) == [1, 3, 5]
    assert [w.split(":")[0] for w in doc.warnings] == ["page 2", "page 4", "page 6"]


@pytest.fixture
def sandbox():
    box = ParseSandbox()
    box.parse(Path("warm.txt"), b"warm up", "h", Limits(max_bytes=10))  # the child is up
    yield box
    box.close()


def test_a_parse_that_keeps_making_progress_still_ends_at_the_wall_clock_cap(tmp_path, sandbox):
    """Every OCRed page extends the no-progress deadline; the total cap ends it anyway."""
    tiff = save_tiff(blank_frames(400, mark=True), tmp_path / "long.tiff")
    limits = Limits(
        max_bytes=10**8,
        timeout_s=60,
        max_wall_s=2,
        ocr=replace(FAST_OCR, max_blank_run=10_000),
    )
    started = time.monotonic()
    with pytest.raises(ParseFailure) as err:
        sandbox.parse(tiff, tiff.read_bytes(), "h", limits)
    assert str(err.value) == "parsing took longer than 2 s in all; stopped (RAG_PARSE_MAX_WALL_S)"
    assert time.monotonic() - started < 10
    assert sandbox.restarts == 1


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    """A few KB of PNG that decodes to millions of pixels; a TIFF whose later frame does."""
    limits = Limits(max_bytes=10**8, ocr=replace(FAST_OCR, max_pixels=4_000_000))
    big = tmp_path / "big.png"
    big.write_bytes(_png(3000, 3000))
    assert big.stat().st_size < 100_000
    started = time.perf_counter()
    with pytest.raises(ParseFailure) as err:
        parse_file(big, big.read_bytes(), "h", limits)
    assert time.perf_counter() - started < 2  # no decode, no Tesseract
    assert str(err.value) == (
        "image is 3,000 x 3,000 pixels (9 M), over the 4 M-pixel OCR limit (RAG_OCR_MAX_PIXELS)"
    )
    tiff = save_tiff([*blank_frames(2), Image.new("L", (2500, 2500), 255)], tmp_path / "t.tiff")
    with pytest.raises(ParseFailure, match=r"2,500 x 2,500 pixels \(6 M\), over the 4 M-pixel"):
        parse_file(tiff, tiff.read_bytes(), "h", limits)


def test_the_default_pixel_limit_refuses_a_225_megapixel_png(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png(15_000, 15_000))
    with pytest.raises(ParseFailure, match=r"\(225 M\), over the 50 M-pixel OCR limit"):
        parse_file(path, path.read_bytes(), "h", LIMITS)


def test_a_giant_pdf_page_is_rendered_within_the_pixel_limit():
    """A 200 x 200 inch page would be 1.6 G pixels at 200 dpi: it is read at a lower one."""
    data = pdf_of_pages([(612, 792), (14_400, 14_400)])
    images = dict(render_pdf_pages(data, [1, 2], dpi=200, max_pixels=4_000_000))
    assert images[1].size == (1700, 2200)  # within the limit: the configured resolution
    width, height = images[2].size
    assert width * height <= 4_000_000 and width > 1900


def test_the_memory_bound_counts_the_processes_below_the_parser():
    """Tesseract runs as processes of the parser: their memory is counted with it."""
    hog = subprocess.Popen(
        [sys.executable, "-c", "b = b'x' * 300_000_000; print('ready', flush=True); input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hog.stdout is not None and hog.stdout.readline() == "ready\n"
        me = os.getpid()
        assert tree_rss_mb(me) - rss_mb(me) > 290
    finally:
        hog.kill()
        hog.wait()
