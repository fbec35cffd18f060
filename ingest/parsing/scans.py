"""Scanned pages and image files read by OCR, as a parse sees them: the glue between
``ocr`` (Tesseract, page by page) and a file's one-line failures.

A page is worth indexing when OCR read it confidently; the others go to the file's
``OcrReport`` and become its warnings, and more than ``OcrConfig.max_blank_run`` of them in
a row fail the file (500 blank pages are no reason to run Tesseract 500 times). Any OCR fault
(a page over its deadline, a missing language, a crash) fails the file, never the run. An
image is bounded from its header before any frame is decoded: frames (``max_pages``) and
pixels per frame (``max_pixels``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ingest.parsing.elements import classified
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.ocr import OcrPageTimeout, OcrReport, image_frames, ocr_pages, usable

if TYPE_CHECKING:
    from PIL.Image import Image
    from unstructured.documents.elements import Element as RawElement

#: Called after each OCRed page: the parse sandbox extends the parse's deadline (a page has
#: its own Tesseract limit, so a long scan goes on while a stalled parse is still stopped).
Heartbeat = Callable[[], None]


def ocr_text(
    images: Iterable[tuple[int, Image]],
    limits: Limits,
    report: OcrReport,
    heartbeat: Heartbeat | None,
) -> dict[int, str]:
    """Page number -> OCR text for the pages worth indexing (the rest go to the report)."""
    out: dict[int, str] = {}
    unusable: list[int] = []  # the current run of adjacent pages without usable text
    try:
        for page in ocr_pages(images, limits.ocr, report):
            if heartbeat is not None:
                heartbeat()
            if usable(page, limits.ocr, report):
                out[page.page] = page.text
                unusable = []
                continue
            if unusable and unusable[-1] != page.page - 1:
                unusable = []  # a page with a text layer came between: a new run
            unusable.append(page.page)
            if len(unusable) > limits.ocr.max_blank_run:
                raise ParseFailure(
                    f"pages {unusable[0]}-{unusable[-1]}: {len(unusable)} pages in a row "
                    "without text OCR could use (blank, or under RAG_OCR_MIN_CONFIDENCE); "
                    f"stopped, over the {limits.ocr.max_blank_run} limit (RAG_OCR_MAX_BLANK_RUN)"
                )
    except ParseFailure:
        raise
    except OcrPageTimeout as exc:
        raise ParseFailure(f"{exc} (RAG_OCR_PAGE_TIMEOUT_S)") from exc
    except Exception as exc:  # Tesseract failed (missing language, crash): the file fails
        name = type(exc).__name__
        raise ParseFailure(f"OCR failed: {name}: {' '.join(str(exc).split())[:200]}") from exc
    return out


def image_elements(
    data: bytes,
    file_type: str,
    limits: Limits,
    report: OcrReport,
    heartbeat: Heartbeat | None = None,
) -> list[RawElement]:
    """An image file (every frame of a multi-page TIFF) read by OCR."""
    from PIL import UnidentifiedImageError

    if not limits.ocr.enabled:
        raise ParseFailure(f"{file_type.upper()} images need OCR, which is off (RAG_OCR=false)")
    max_pixels = limits.ocr.max_pixels
    try:
        frames, size = _frames_and_largest(data, limits.ocr.max_pages)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ParseFailure(
            f"damaged or unreadable {file_type.upper()} image: {' '.join(str(exc).split())[:160]}"
        ) from exc
    if frames > limits.ocr.max_pages:
        raise ParseFailure(
            f"image has {frames:,} pages, over the {limits.ocr.max_pages:,}-page "
            "OCR limit (RAG_OCR_MAX_PAGES)"
        )
    width, height = size
    if width * height > max_pixels:
        raise ParseFailure(
            f"image is {width:,} x {height:,} pixels ({width * height / 1e6:.0f} M), over the "
            f"{max_pixels / 1e6:g} M-pixel OCR limit (RAG_OCR_MAX_PIXELS)"
        )
    # frames are decoded inside ocr_text, which turns any failure into the file's one line
    pages = ocr_text(image_frames(data, frames), limits, report, heartbeat)
    return classified(sorted(pages.items()))


def _frames_and_largest(data: bytes, max_pages: int) -> tuple[int, tuple[int, int]]:
    """The frame count and the largest frame's size, from the headers (no pixel decoded;
    past ``max_pages`` frames the sizes are not read), after PIL's structure check. PIL's
    own pixel bound is off while the headers are read (the caller checks the sizes and
    words the failure); it is not the bound, as it checks the first frame only."""
    from PIL import Image

    bound, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            frames = getattr(probe, "n_frames", 1)
            largest = probe.size
            for index in range(1, frames if frames <= max_pages else 0):
                probe.seek(index)  # reads the frame's header only
                if probe.size[0] * probe.size[1] > largest[0] * largest[1]:
                    largest = probe.size
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
    finally:
        Image.MAX_IMAGE_PIXELS = bound
    return frames, largest
