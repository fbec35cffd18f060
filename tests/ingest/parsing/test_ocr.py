"""OCR with the real Tesseract on scans whose truth is known (pages of the repository's own
text PDF rendered at 200 dpi), through the parse sandbox, the indexer and the API."""

from __future__ import annotations

import os
import shutil
import time

import httpx
import pytest
from rapidfuzz.distance import Levenshtein

from api.app import create_app
from api.deps import Services
from ingest.indexer import Indexer
from ingest.parsing.dispatch import parse_file
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.ocr import OcrUnavailable, check_languages, page_text
from ingest.parsing.pdf_text import pdf_pages
from ingest.parsing.sandbox import ParseSandbox
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.store.qdrant_store import QdrantStore
from tests.conftest import ROOT
from tests.helpers.pdf import write_pdf
from tests.helpers.scans import blank_page, image_pdf, render_pages, save_tiff, skewed_noisy
from tests.helpers.servers import free_port, serve

MANUAL = ROOT / "samples" / "docs" / "manuals" / "R-FAQ.pdf"
PROSE_PAGES = [7, 8]  # two pages of running text in the repository's own R FAQ
LIMITS = Limits(max_bytes=50_000_000)
FACT = [
    "Operations memo, page two.",
    "",
    "The Quillfeather vault opens only with the",
    "access code 7316, issued by the",
    "night registrar on duty.",
]


def _norm(text: str) -> str:
    return " ".join(text.split())


def cer(truth: str, seen: str) -> float:
    truth, seen = _norm(truth), _norm(seen)
    return Levenshtein.distance(truth, seen) / max(1, len(truth))


def _page_texts(doc) -> dict[int, str]:
    pages: dict[int, list[str]] = {}
    for element in doc.elements:
        pages.setdefault(element.page, []).append(element.text)
    return {n: "\n\n".join(texts) for n, texts in pages.items()}


@pytest.fixture(scope="module")
def manual_scan():
    data = MANUAL.read_bytes()
    truth = dict(pdf_pages(data))
    return [truth[n] for n in PROSE_PAGES], render_pages(data, PROSE_PAGES)


def test_tesseract_and_english_are_installed():
    check_languages("eng")  # the set-up installs both; a missing one is a start-up error


def test_a_missing_language_is_a_clear_error_at_start(settings_factory, embedder):
    with pytest.raises(OcrUnavailable, match="xyz not installed"):
        check_languages("eng+xyz")
    settings = settings_factory(ocr_languages="eng+xyz")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        with pytest.raises(OcrUnavailable, match="RAG_OCR_LANGUAGES"):
            Indexer(settings, embedder, store)
    finally:
        store.close()


def test_image_only_pdf_png_and_tiff_read_under_3_percent_cer(tmp_path, manual_scan):
    truth, images = manual_scan
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(image_pdf(images))
    assert not any(t.strip() for _, t in pdf_pages(pdf.read_bytes())), "no text layer"
    tiff = save_tiff(images, tmp_path / "scan.tiff")
    png = tmp_path / "scan.png"
    images[0].save(png)
    for path, pages in [(pdf, [1, 2]), (tiff, [1, 2]), (png, [1])]:
        doc = parse_file(path, path.read_bytes(), "h", LIMITS)
        seen = _page_texts(doc)
        assert sorted(seen) == pages, path.name  # page numbers kept for citations
        for n in pages:
            rate = cer(truth[n - 1], seen[n])
            assert rate < 0.03, f"{path.name} page {n}: CER {rate:.3%}"
            assert doc.ocr_confidence[n] > 80
        assert doc.ocr_seconds > 0 and not doc.warnings


def test_mixed_pdf_keeps_text_pages_and_ocrs_scanned_ones(tmp_path):
    text_pdf = write_pdf(
        tmp_path / "text.pdf",
        [["Quarterly operations report.", "", "Page one has a real text layer."], FACT],
    )
    data = text_pdf.read_bytes()
    scanned_second = render_pages(data, [2])[0]
    # page 1: the text page itself; page 2: the same page as an image only; page 3: blank scan
    import pypdfium2 as pdfium

    mixed = pdfium.PdfDocument(data)
    mixed.del_page(1)
    scans = pdfium.PdfDocument(image_pdf([scanned_second, blank_page()]))
    mixed.import_pages(scans)
    path = tmp_path / "mixed.pdf"
    mixed.save(str(path))
    mixed.close()
    scans.close()

    doc = parse_file(path, path.read_bytes(), "h", LIMITS)
    pages = _page_texts(doc)
    assert sorted(pages) == [1, 2]
    assert "Page one has a real text layer." in pages[1]
    assert cer(" ".join(FACT), pages[2]) < 0.03
    assert set(doc.ocr_confidence) == {2, 3}  # only scanned pages are OCRed
    assert doc.warnings == ["page 3: blank page (no text found by OCR)"]


def test_skewed_noisy_scan_still_ingests(tmp_path, manual_scan):
    truth, images = manual_scan
    path = tmp_path / "skewed.png"
    skewed_noisy(images[0], degrees=3.0, noise=0.02).save(path)
    doc = parse_file(path, path.read_bytes(), "h", LIMITS)
    text = _page_texts(doc)[1]
    assert cer(truth[0], text) < 0.03, cer(truth[0], text)  # deskewed and despeckled
    assert doc.ocr_confidence[1] > 80


def test_blank_and_junk_scans_are_reported_not_indexed(tmp_path):
    blank = tmp_path / "blank.png"
    blank_page().save(blank)
    with pytest.raises(ParseFailure, match="page 1: blank page"):
        parse_file(blank, blank.read_bytes(), "h", LIMITS)
    noise = tmp_path / "noise.png"
    skewed_noisy(blank_page(), degrees=0, noise=0.3).save(noise)
    strict = Limits(max_bytes=50_000_000, ocr=LIMITS.ocr.__class__(min_confidence=99.9))
    with pytest.raises(ParseFailure, match="page 1: (blank page|OCR confidence)"):
        parse_file(noise, noise.read_bytes(), "h", strict)


def test_damaged_image_and_ocr_off_fail_with_one_line(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    with pytest.raises(ParseFailure, match="damaged or unreadable PNG image"):
        parse_file(broken, broken.read_bytes(), "h", LIMITS)
    off = Limits(max_bytes=50_000_000, ocr=LIMITS.ocr.__class__(enabled=False))
    image = tmp_path / "page.png"
    blank_page().save(image)
    with pytest.raises(ParseFailure, match="RAG_OCR=false"):
        parse_file(image, image.read_bytes(), "h", off)


def test_ocr_page_limit_and_timeout_fail_the_file_not_the_job(tmp_path, manual_scan):
    _, images = manual_scan
    tiff = save_tiff(images, tmp_path / "two.tiff")
    one_page = Limits(max_bytes=50_000_000, ocr=LIMITS.ocr.__class__(max_pages=1))
    with pytest.raises(ParseFailure, match="over the 1-page OCR limit"):
        parse_file(tiff, tiff.read_bytes(), "h", one_page)
    hasty = Limits(max_bytes=50_000_000, ocr=LIMITS.ocr.__class__(page_timeout_s=0.01))
    with pytest.raises(ParseFailure, match="OCR took longer than 0.01 s"):
        parse_file(tiff, tiff.read_bytes(), "h", hasty)


def test_killed_parse_stops_its_tesseract_processes(tmp_path, manual_scan):
    """The sandbox kills the parser's whole process group: no Tesseract is left running."""
    _, images = manual_scan
    tiff = save_tiff(images * 6, tmp_path / "long.tiff")
    sandbox = ParseSandbox()
    try:
        limits = Limits(
            max_bytes=50_000_000, timeout_s=1.0, ocr=LIMITS.ocr.__class__(page_timeout_s=60)
        )
        sandbox.parse(tmp_path / "warm.txt", b"warm up", "h", Limits(max_bytes=10))
        child = sandbox._proc.pid
        started = time.monotonic()
        with pytest.raises(ParseFailure, match="longer than 1 s"):
            sandbox.parse(tiff, tiff.read_bytes(), "h", limits)
        assert time.monotonic() - started < 30
    finally:
        sandbox.close()
    time.sleep(0.5)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == child:  # state, process group
            left.append(pid)
    assert not left, f"processes of the killed parser still run: {left}"


def test_a_long_scan_goes_on_while_pages_keep_coming(tmp_path, manual_scan):
    """Each OCRed page extends the parse deadline: 12 pages (~1-2 s each) finish under a
    6 s limit that a single stalled step would hit."""
    _, images = manual_scan
    tiff = save_tiff(images * 6, tmp_path / "long.tiff")
    sandbox = ParseSandbox()
    try:
        limits = Limits(max_bytes=50_000_000, timeout_s=6.0)
        started = time.monotonic()
        doc = sandbox.parse(tiff, tiff.read_bytes(), "h", limits)
        took = time.monotonic() - started
    finally:
        sandbox.close()
    assert sorted(doc.ocr_confidence) == list(range(1, 13))  # all read, none killed
    print(f"12 scanned pages in {took:.1f} s under a 6 s no-progress limit")


def test_page_text_rebuilds_paragraphs_and_joins_hyphenated_words():
    data = {
        "text": ["The", "recon-", "struction", "works.", "", "Next", "one"],
        "conf": [95, 90, 91, 96, -1, 88, 80],
        "block_num": [1, 1, 1, 1, 1, 2, 2],
        "par_num": [1, 1, 1, 1, 1, 1, 1],
        "line_num": [1, 1, 2, 2, 2, 1, 1],
    }
    text, confidence, words = page_text(data)
    assert text == "The reconstruction works.\n\nNext one"
    assert words == 6 and round(confidence, 1) == 90.0


def test_a_question_only_on_a_scanned_page_is_found_by_search(settings_factory, embedder, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    data = write_pdf(
        tmp_path / "memo.pdf", [["Operations memo.", "", "Page one has text."], FACT]
    ).read_bytes()
    (folder / "memo-scan.pdf").write_bytes(image_pdf(render_pages(data, [1, 2])))
    shutil.copy(ROOT / "tests" / "fixtures" / "docs" / "release-notes.txt", folder)
    settings = settings_factory()
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    summary = Indexer(settings, embedder, store).run([folder])
    assert summary.ingested == 2 and not summary.failed
    assert summary.stages.ocr > 0  # reported apart from parsing
    llm = LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="none"))
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, None)
    try:
        with serve(create_app(settings, services=services)) as url:
            r = httpx.post(
                f"{url}/v1/search", json={"query": "Quillfeather vault access code", "top_k": 3}
            )
            assert r.status_code == 200, r.text
            top = r.json()["results"][0]
            assert top["source"].endswith("memo-scan.pdf") and 2 in top["pages"]
            assert "7316" in top["snippet"]
            docs = httpx.get(f"{url}/v1/documents").json()["documents"]
            scan = next(d for d in docs if d["source"].endswith("memo-scan.pdf"))
            assert set(scan["ocr_confidence"]) == {"1", "2"}
            assert min(scan["ocr_confidence"].values()) > 80
    finally:
        store.close()
