"""OCR with Tesseract: scanned PDF pages (rendered by PDFium) and images, page by page.

Why PDFium pages and not unstructured's ``ocr_only`` strategy: ``ocr_only`` OCRs a whole
PDF (every page, also those with a perfect text layer) through ``pdf2image``/poppler, so a
mixed PDF loses its exact text pages and pays OCR for all of them. Here each page keeps its
text layer when it has one, and only pages without one are rendered (PDFium, already the
text-layer reader) and read by Tesseract (``bench ingest --scanned`` measures both paths).

Tesseract runs as its own process per page (``unstructured.pytesseract`` spawns the
``tesseract`` binary), at most ``OcrConfig.processes`` at a time, each single-threaded
(``OMP_THREAD_LIMIT=1``), each with a deadline, each killed by the kernel if the parser
process dies (``processes.die_with_parent``). No page is larger than ``OcrConfig.max_pixels``
(an image frame over it is refused from its header; a PDF page is rendered at a lower
resolution so it fits). One pass gives words with their
confidence: the page's text is rebuilt from the words (lines of a paragraph joined, words
hyphenated at a line end rejoined) and its confidence is the mean word confidence. A page
whose confidence is under the floor, or that holds no words (a blank scan), is reported and
not indexed.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ingest.parsing.processes import die_with_parent
from rag.wiring import StartupError

log = logging.getLogger(__name__)

#: Image files that become documents through OCR (multi-page TIFF: one page per frame).
#: A page with fewer letters and digits than this in its text layer is treated as scanned.
MIN_TEXT_LAYER_CHARS = 16

#: A page whose darkest pixel is this light (0 black, 255 white) holds no ink: blank.
BLANK_LEVEL = 250


class OcrUnavailable(StartupError):
    """Tesseract or a configured language is missing (a start-up error, not a file's)."""


@dataclass(frozen=True)
class OcrConfig:
    enabled: bool = True
    languages: str = "eng"  # Tesseract's form: "eng" or "eng+deu"
    dpi: int = 200
    processes: int = 2  # Tesseract processes at once (RAG_OCR_WORKERS)
    min_confidence: float = 40.0
    max_pages: int = 500
    #: More OCRed pages than this in a row without usable text fail the file (a scan of
    #: hundreds of blank pages ends in seconds, not after all of them)
    max_blank_run: int = 20
    max_pixels: int = 50_000_000  # one page or frame, width x height
    page_timeout_s: float = 60.0
    #: Tesseract's page segmentation: "single_column" (--psm 4: lines top to bottom; robust
    #: on JPEG-compressed scans, where "auto" split one column into out-of-order blocks: CER
    #: 11.9% vs 1.2% on a page of the R FAQ) or "auto" (--psm 3: finds columns)
    layout: str = "single_column"


@dataclass(frozen=True)
class OcrPage:
    """One page read by Tesseract."""

    page: int
    text: str
    confidence: float  # mean word confidence, 0-100; 0 when no word was found
    words: int
    seconds: float

    @property
    def blank(self) -> bool:
        return self.words == 0 or not self.text.strip()


@dataclass
class OcrReport:
    """What OCR did to one file: pages read, kept and left out (with why), and its time."""

    pages: list[OcrPage] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (page, reason)
    seconds: float = 0.0


@functools.lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    binary = shutil.which("tesseract")
    if binary is None:
        raise OcrUnavailable(
            "Tesseract is not installed (apt-get install tesseract-ocr "
            "tesseract-ocr-eng; scripts/setup_ocr.sh), or set RAG_OCR=false"
        )
    out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30)
    lines = (out.stdout or out.stderr).splitlines()
    return frozenset(ln.strip() for ln in lines[1:] if ln.strip())


def check_languages(languages: str) -> None:
    """Raise ``OcrUnavailable`` naming every configured language Tesseract lacks."""
    wanted = [lang for lang in languages.split("+") if lang]
    if not wanted:
        raise OcrUnavailable("RAG_OCR_LANGUAGES is empty")
    have = installed_languages()
    missing = [lang for lang in wanted if lang not in have]
    if missing:
        raise OcrUnavailable(
            f"OCR language(s) {', '.join(missing)} not installed for Tesseract (installed: "
            f"{', '.join(sorted(have)) or 'none'}); install tesseract-ocr-{missing[0]} or fix "
            "RAG_OCR_LANGUAGES"
        )


def page_text(data: dict[str, list[Any]]) -> tuple[str, float, int]:
    """Text, mean confidence and word count from Tesseract's word table (image_to_data)."""
    paragraphs: dict[tuple[int, int], list[list[str]]] = {}
    lines_seen: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        conf = float(data["conf"][i])
        if not word or conf < 0:
            continue
        confidences.append(conf)
        para = (data["block_num"][i], data["par_num"][i])
        key = (*para, data["line_num"][i])
        if key not in lines_seen:
            lines_seen[key] = []
            paragraphs.setdefault(para, []).append(lines_seen[key])
        lines_seen[key].append(word)
    out = []
    for lines in paragraphs.values():
        text = ""
        for words in lines:
            line = " ".join(words)
            if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower():
                text = text[:-1] + line  # a word hyphenated at the line end
            else:
                text = f"{text} {line}" if text else line
        out.append(text)
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    return "\n\n".join(out), confidence, len(confidences)


def skew_angle(image: Any, limit: float = 5.0, step: float = 0.25) -> float:
    """The rotation (degrees) that levels the text lines: the angle whose row profile of a
    small binarized copy is sharpest (text lines and gaps alternate most)."""
    import numpy as np
    from PIL import Image

    small = image.copy()
    small.thumbnail((800, 800))
    ink = Image.fromarray(((np.asarray(small) < 128) * 255).astype(np.uint8))
    best, best_score = 0.0, -1.0
    for angle in np.arange(-limit, limit + step / 2, step):
        rows = np.asarray(
            ink.rotate(float(angle), resample=Image.Resampling.NEAREST, fillcolor=0)
        ).sum(axis=1, dtype=np.float64)
        score = float(np.square(np.diff(rows)).sum())
        if score > best_score:
            best, best_score = float(angle), score
    return best


def prepare_image(image: Any) -> Any:
    """Grayscale, a 3x3 median filter (salt-and-pepper specks: CER 8.2% -> 1.4% on a page
    with 2% specks, 1.16% -> 1.29% on a clean one), and deskewed when tilted by half a
    degree or more (a 3-degree tilt read in single-column mode: CER 51% -> 1.2%)."""
    from PIL import Image, ImageFilter

    gray = image.convert("L") if image.mode != "L" else image
    gray = gray.filter(ImageFilter.MedianFilter(3))
    angle = skew_angle(gray)
    if abs(angle) >= 0.5:
        gray = gray.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    return gray


@functools.lru_cache(maxsize=1)
def _tesseract() -> ModuleType:
    """``unstructured_pytesseract``, its Tesseract processes started with
    ``die_with_parent`` (the library has no option for it: its ``subprocess_args`` is
    wrapped)."""
    import unstructured_pytesseract as tess
    from unstructured_pytesseract import pytesseract as runner

    plain = runner.subprocess_args

    def subprocess_args(include_stdout: bool = True) -> dict[str, Any]:
        return {
            **plain(include_stdout),
            "preexec_fn": functools.partial(die_with_parent, os.getpid()),
        }

    runner.subprocess_args = subprocess_args
    return tess


def ocr_image(image: Any, page: int, config: OcrConfig) -> OcrPage:
    """One page image through Tesseract (a child process with a deadline); a page without
    a single dark pixel is blank without asking Tesseract."""
    tess = _tesseract()
    started = time.perf_counter()
    gray = image.convert("L") if image.mode != "L" else image
    if gray.getextrema()[0] >= BLANK_LEVEL:
        return OcrPage(page, "", 0.0, 0, time.perf_counter() - started)
    gray = prepare_image(gray)
    try:
        psm = 3 if config.layout == "auto" else 4
        data = tess.image_to_data(
            gray,
            lang=config.languages,
            config=f"--psm {psm}",
            output_type=tess.Output.DICT,
            timeout=config.page_timeout_s,
        )
    except RuntimeError as exc:  # pytesseract's timeout (the tesseract process is killed)
        if "timeout" in str(exc).lower():
            raise OcrPageTimeout(page, config.page_timeout_s) from exc
        raise
    text, confidence, words = page_text(data)
    return OcrPage(page, text, round(confidence, 1), words, time.perf_counter() - started)


class OcrPageTimeout(Exception):
    def __init__(self, page: int, seconds: float) -> None:
        super().__init__(f"page {page}: OCR took longer than {seconds:g} s")
        self.page = page


def ocr_pages(
    images: Iterable[tuple[int, Any]], config: OcrConfig, report: OcrReport
) -> Iterator[OcrPage]:
    """OCR ``(page number, image)`` pairs, ``config.processes`` Tesseract processes at a
    time, yielding pages in order. Images are produced lazily (rendering is sequential:
    PDFium is not thread-safe), at most twice the processes ahead of the slowest page."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per Tesseract process
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, config.processes), thread_name_prefix="ocr") as pool:
        window: list[Any] = []
        try:
            for number, image in images:
                window.append(pool.submit(ocr_image, image, number, config))
                if len(window) >= 2 * max(1, config.processes):
                    yield _take(window.pop(0), report)
            while window:
                yield _take(window.pop(0), report)
        finally:  # the caller stopped early: pages not started are not read
            for future in window:
                future.cancel()
    report.seconds += time.perf_counter() - started


def _take(future: Any, report: OcrReport) -> OcrPage:
    page = future.result()
    report.pages.append(page)
    return page


def usable(page: OcrPage, config: OcrConfig, report: OcrReport) -> bool:
    """Whether an OCRed page is indexed; if not, why goes into ``report.skipped``."""
    if page.blank:
        report.skipped.append((page.page, "blank page (no text found by OCR)"))
        return False
    if page.confidence < config.min_confidence:
        report.skipped.append(
            (
                page.page,
                f"OCR confidence {page.confidence:.0f} is under "
                f"the floor {config.min_confidence:g} "
                "(RAG_OCR_MIN_CONFIDENCE); not indexed",
            )
        )
        return False
    return True


def has_text_layer(text: str) -> bool:
    return sum(c.isalnum() for c in text) >= MIN_TEXT_LAYER_CHARS


def render_scale(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """PDFium's scale for a page: ``dpi``, or less where the page would exceed
    ``max_pixels`` at it (a poster-sized page is read at a lower resolution, not refused)."""
    scale = dpi / 72
    area = width_pt * height_pt * scale * scale
    if area > max_pixels:
        scale *= math.sqrt(max_pixels / area)
    return scale


def render_pdf_pages(
    data: bytes, numbers: list[int], dpi: int, max_pixels: int = OcrConfig.max_pixels
) -> Iterator[tuple[int, Any]]:
    """PDFium renders the given pages (1-based) to grayscale PIL images at ``dpi``, each at
    most ``max_pixels``."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    try:
        for number in numbers:
            page = document[number - 1]
            try:
                width, height = page.get_size()
                scale = render_scale(width, height, dpi, max_pixels)
                if scale < dpi / 72:
                    log.info(
                        "page %d rendered at %.0f dpi to fit the pixel limit", number, scale * 72
                    )
                bitmap = page.render(scale=scale, grayscale=True)
                image = bitmap.to_pil()
                bitmap.close()
            finally:
                page.close()
            yield number, image
    finally:
        document.close()


def image_frames(data: bytes, max_pages: int) -> Iterator[tuple[int, Any]]:
    """The frames of an image file (a multi-page TIFF has several), 1-based."""
    import io

    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= max_pages:
                break
            yield index + 1, frame.copy()
