"""PDFs: opened and bounded by PDFium first, then read page by page from PDFium's text layer
(``pdf_text``), with the pages that have none read by OCR (``scans``) when it is on.

The other reader, ``RAG_PDF_TEXT=unstructured`` (pdfminer's layout analysis, slower, no
OCR), is dispatched like any other format; ``check_pdf`` guards both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.parsing.elements import classified
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.ocr import OcrReport, has_text_layer, render_pdf_pages
from ingest.parsing.pdf_text import pdf_pages
from ingest.parsing.scans import Heartbeat, ocr_text

if TYPE_CHECKING:
    from unstructured.documents.elements import Element as RawElement


def check_pdf(data: bytes, limits: Limits) -> None:
    """PDFium opens a PDF in microseconds and names the problem (password, damage) exactly."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseFailure("encrypted PDF (a password is needed)") from exc
        detail = str(exc).split("(PDFium: ")[-1].rstrip(").")
        raise ParseFailure(f"damaged PDF: {detail}") from exc
    try:
        pages = len(document)
        if pages == 0:
            raise ParseFailure("PDF has no pages")
        if pages > limits.max_pages:
            raise ParseFailure(f"PDF has {pages:,} pages, over the {limits.max_pages:,} limit")
    finally:
        document.close()


def pdfium_elements(
    data: bytes, limits: Limits, report: OcrReport, heartbeat: Heartbeat | None = None
) -> list[RawElement]:
    """PDFium text layer per page; pages without one are OCRed (when enabled). Both are
    classified by unstructured's text partitioner, in page order."""
    texts = dict(pdf_pages(data, keep_empty=True))
    scanned = [n for n, text in texts.items() if not has_text_layer(text)]
    if scanned and limits.ocr.enabled:
        if len(scanned) > limits.ocr.max_pages:
            raise ParseFailure(
                f"{len(scanned):,} pages without a text layer, over the "
                f"{limits.ocr.max_pages:,}-page OCR limit (RAG_OCR_MAX_PAGES)"
            )
        images = render_pdf_pages(data, scanned, limits.ocr.dpi, limits.ocr.max_pixels)
        pages = ocr_text(images, limits, report, heartbeat)
        for number in scanned:
            texts[number] = pages.get(number, "")
    elif scanned and any(has_text_layer(t) for t in texts.values()):
        report.skipped.extend((n, "no text layer (OCR is off: RAG_OCR=false)") for n in scanned)
    return classified(sorted(texts.items()))
