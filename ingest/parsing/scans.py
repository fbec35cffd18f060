"""Scanned pages and image files read by OCR, as a parse sees them: the glue between
``ocr`` (Tesseract, page by page) and a file's one-line failures.

A page is worth indexing when OCR read it confidently; the others go to the file's
``OcrReport`` and become its warnings. Any OCR fault (a page over its deadline, a missing
language, a crash) fails the file, never the run.
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
    try:
        for page in ocr_pages(images, limits.ocr, report):
            if heartbeat is not None:
                heartbeat()
            if usable(page, limits.ocr, report):
                out[page.page] = page.text
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
    from PIL import Image, UnidentifiedImageError

    if not limits.ocr.enabled:
        raise ParseFailure(f"{file_type.upper()} images need OCR, which is off (RAG_OCR=false)")
    Image.MAX_IMAGE_PIXELS = 200_000_000  # a decompression bomb fails the file, not the parser
    try:
        with Image.open(io.BytesIO(data)) as probe:
            frames = getattr(probe, "n_frames", 1)
            probe.verify()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise ParseFailure(
            f"damaged or unreadable {file_type.upper()} image: {' '.join(str(exc).split())[:160]}"
        ) from exc
    if frames > limits.ocr.max_pages:
        raise ParseFailure(
            f"image has {frames:,} pages, over the {limits.ocr.max_pages:,}-page "
            "OCR limit (RAG_OCR_MAX_PAGES)"
        )
    # frames are decoded inside ocr_text, which turns any failure into the file's one line
    pages = ocr_text(image_frames(data, frames), limits, report, heartbeat)
    return classified(sorted(pages.items()))
