"""Files to ``ParsedDocument`` with unstructured, offline, with failures as values: the
format dispatch.

``parse_file`` takes a file's bytes as read and hashed (``limits.read_checked``), sends
them to the reader of their format (``archives`` guards the zip-based Office formats,
``pdf`` and ``scans`` read PDFs and images, ``email`` and ``text`` the text formats,
unstructured's partitioners the rest), and assembles the document within ``Limits``.
Every way a file can be bad is a ``ParseFailure`` with a one-line reason.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.files.identity import display_path
from ingest.parsing.archives import ARCHIVES, check_archive
from ingest.parsing.elements import to_elements
from ingest.parsing.email import check_email, email_subject
from ingest.parsing.formats import IMAGE_SUFFIXES, SUPPORTED
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.ocr import OcrReport
from ingest.parsing.pdf import check_pdf, pdfium_elements
from ingest.parsing.scans import Heartbeat, image_elements
from ingest.parsing.text import decode_text
from rag.documents import ParsedDocument

if TYPE_CHECKING:
    from collections.abc import Callable

    from unstructured.documents.elements import Element as RawElement

#: unstructured reads these when its modules are first imported (every import of it in this
#: package is inside a function that runs after ``_install_heuristics``): no telemetry
#: ping, no hub.
_OFFLINE_ENV = {"DO_NOT_TRACK": "1", "UNSTRUCTURED_DISABLE_NOTICE": "1", "HF_HUB_OFFLINE": "1"}

log = logging.getLogger(__name__)

_IMAGES = set(IMAGE_SUFFIXES.values())
_TEXT_TYPES = {"html", "md", "txt"}

_installed: bool | None = None


def _install_heuristics(use_spacy: bool) -> None:
    global _installed
    if _installed is None:
        for key, value in _OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        from ingest.parsing import fast_nlp

        fast_nlp.install(use_spacy=use_spacy)
        _installed = use_spacy


def warm_up(use_spacy: bool = False) -> None:
    """Import every partitioner once (about 4 s, mostly the PDF stack), so that no file's
    parse time includes module loading."""
    _install_heuristics(use_spacy)
    for _, spec in SUPPORTED.values():
        if spec != "ocr":
            _partitioner(spec)
    from unstructured.partition.text import partition_text

    partition_text(text="Warm up. This is a sentence.", languages=["eng"])


def _partitioner(spec: str) -> Callable[..., list[RawElement]]:
    module, name = spec.split(":")
    partition: Callable[..., list[RawElement]] = getattr(__import__(module, fromlist=[name]), name)
    return partition


def parse_file(
    path: Path, data: bytes, digest: str, limits: Limits, heartbeat: Heartbeat | None = None
) -> ParsedDocument:
    """Partition one file's bytes (as read and hashed) with unstructured into our elements.

    Runs unbounded in time: callers that must survive a runaway parse use
    ``ingest.parsing.sandbox.ParseSandbox``, which calls this in a child process
    (``heartbeat`` is called after each OCRed page, which extends the sandbox's deadline)."""
    _install_heuristics(limits.use_spacy)
    file_type, spec = SUPPORTED[path.suffix.lower()]
    if file_type in ARCHIVES:
        check_archive(data, file_type, limits)
    report = OcrReport()
    if file_type in _IMAGES:
        raw = image_elements(data, file_type, limits, report, heartbeat)
        return _document(path, data, digest, file_type, raw, limits, report=report)
    if file_type == "pdf":
        check_pdf(data, limits)
        if limits.pdf_text == "pdfium":
            raw = pdfium_elements(data, limits, report, heartbeat)
            return _document(path, data, digest, file_type, raw, limits, report=report)
    partition = _partitioner(spec)
    kwargs: dict[str, Any] = {"languages": ["eng"]}
    encoding = "binary"
    if file_type in _TEXT_TYPES:
        text, encoding = decode_text(data)
        if not text.strip():
            raise ParseFailure("file holds only whitespace")
        kwargs["text"] = text
    else:
        if file_type == "eml":
            check_email(data)
        kwargs.update(file=io.BytesIO(data), metadata_filename=str(path))
    if file_type == "pdf":
        kwargs.update(strategy="fast", infer_table_structure=False)
    try:
        raw = partition(**kwargs)
    except ParseFailure:
        raise
    except Exception as exc:  # unstructured raises many types; the reason is what matters
        raise ParseFailure(_reason(file_type, exc)) from exc
    return _document(path, data, digest, file_type, raw, limits, encoding)


def _document(
    path: Path,
    data: bytes,
    digest: str,
    file_type: str,
    raw: list[RawElement],
    limits: Limits,
    encoding: str = "binary",
    report: OcrReport | None = None,
) -> ParsedDocument:
    elements = to_elements(raw)
    warnings = [f"page {page}: {why}" for page, why in sorted(report.skipped if report else [])]
    if len(elements) > limits.max_elements:
        raise ParseFailure(f"{len(elements):,} elements, over the {limits.max_elements:,} limit")
    chars = sum(len(e.text) for e in elements)
    if chars > limits.max_chars:
        raise ParseFailure(f"{chars:,} characters of text, over the {limits.max_chars:,} limit")
    if not elements:
        raise ParseFailure(_nothing_found(file_type, limits, warnings))
    title = next((e.text[:200] for e in elements if e.is_heading), "") or path.stem
    if file_type == "eml":
        title = email_subject(raw) or title
    doc = ParsedDocument(
        source=display_path(path),
        file_type=file_type,
        title=title,
        elements=elements,
        content_hash=digest,
        size_bytes=len(data),
        warnings=warnings,
        ocr_confidence={p.page: p.confidence for p in report.pages} if report else {},
        ocr_seconds=report.seconds if report else 0.0,
    )
    if encoding not in ("utf-8", "binary"):
        log.info("%s decoded as %s", doc.source, encoding)
    return doc


def _nothing_found(file_type: str, limits: Limits, warnings: list[str]) -> str:
    """Why a file gave no element at all."""
    if warnings:  # every page was scanned and left out: say which and why
        return (
            "no page could be indexed: "
            + "; ".join(warnings[:5])
            + ("; ..." if len(warnings) > 5 else "")
        )
    # unstructured returns [] for many broken PDFs with only an INFO log.
    if file_type == "pdf":
        why = (
            "no text layer and OCR is off"
            if not limits.ocr.enabled
            else "no text layer: OCR needs RAG_PDF_TEXT=pdfium"
            if limits.pdf_text != "pdfium"
            else "empty"
        )
        return f"no text could be extracted from the PDF ({why}, or damaged)"
    if file_type in _IMAGES:
        return "no text found in the image by OCR"
    return "no text found in the file"


def _reason(file_type: str, exc: Exception) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:200]
    if "password" in (name + text).lower() or "encrypt" in (name + text).lower():
        return f"encrypted {file_type.upper()} (a password is needed)"
    if file_type == "pdf":
        return f"damaged or unreadable PDF: {name}: {text}" if text else f"damaged PDF ({name})"
    if file_type in ARCHIVES:
        return f"damaged or unreadable {file_type.upper()} file: {name}: {text}"
    return f"{file_type} parser failed: {name}: {text}"
