"""Files to ``ParsedDocument`` with unstructured, offline, with failures as values.

Every way a file can be bad (too big, empty, binary, encrypted, corrupt, unreadable,
unsupported) becomes a ``ParseFailure`` carrying a one-line reason, so a bulk run never
stops on one file and never touches what is already stored for it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.files.confine import FileTooLarge, NotRegular, OutsideRoots, Roots, read_confined
from ingest.parsing.formats import IMAGE_SUFFIXES, SUPPORTED
from ingest.parsing.ocr import (
    OcrConfig,
    OcrPageTimeout,
    OcrReport,
    has_text_layer,
    image_frames,
    ocr_pages,
    render_pdf_pages,
    usable,
)
from ingest.parsing.tables import html_table_markdown
from rag.documents import Element, ParsedDocument

#: unstructured reads these when its modules are first imported (all imports of it here are
#: inside functions that call ``_install_heuristics`` first): no telemetry ping, no hub.
_OFFLINE_ENV = {"DO_NOT_TRACK": "1", "UNSTRUCTURED_DISABLE_NOTICE": "1", "HF_HUB_OFFLINE": "1"}

log = logging.getLogger(__name__)

#: Extension -> (file type label, unstructured partition function name).
_IMAGES = set(IMAGE_SUFFIXES.values())
_TEXT_TYPES = {"html", "md", "txt"}
_ARCHIVES = {"docx", "pptx", "xlsx"}
_SKIPPED_CATEGORIES = {"PageBreak", "PageNumber", "Image"}
_RUNNING = {"Header", "Footer"}
#: Bumped whenever parsing or chunking output changes, so unchanged files re-ingest once.
PIPELINE_VERSION = "2"  # 2: tables as Markdown, OCR


class ParseFailure(Exception):
    """A file that cannot be ingested; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one file's parse, from Settings (see ``Limits.from_settings``).

    Reading: ``max_bytes`` on the file as stored. Archives (DOCX/PPTX/XLSX are zip files):
    the declared uncompressed total, the member count and the compression ratio of any large
    member (a few KB that inflate to hundreds of MB is a zip bomb; real Office XML compresses
    5-20x). PDFs: the page count. Output: characters and elements. The wall-clock and memory
    limits are enforced by the parse sandbox (``ingest.parsing.sandbox``), which runs the parse in a
    child process it can kill.
    """

    max_bytes: int
    pdf_text: str = "pdfium"  # or "unstructured" (pdfminer layout analysis, slower)
    use_spacy: bool = False
    max_archive_bytes: int = 200_000_000
    max_archive_ratio: float = 100.0
    max_archive_members: int = 10_000
    max_pages: int = 5_000
    max_chars: int = 20_000_000
    max_elements: int = 200_000
    timeout_s: float = 120.0
    max_memory_mb: int = 2048
    ocr: OcrConfig = OcrConfig()

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            max_bytes=int(settings.max_file_mb * 1_000_000),
            pdf_text=settings.pdf_text,
            use_spacy=settings.parse_with_spacy,
            max_archive_bytes=int(settings.parse_max_archive_mb * 1_000_000),
            max_archive_ratio=settings.parse_max_archive_ratio,
            max_archive_members=settings.parse_max_archive_members,
            max_pages=settings.parse_max_pages,
            max_chars=settings.parse_max_chars,
            max_elements=settings.parse_max_elements,
            timeout_s=settings.parse_timeout_s,
            max_memory_mb=settings.parse_max_memory_mb,
            ocr=OcrConfig(
                enabled=settings.ocr,
                languages=settings.ocr_languages,
                dpi=settings.ocr_dpi,
                workers=settings.ocr_workers,
                min_confidence=settings.ocr_min_confidence,
                max_pages=settings.ocr_max_pages,
                page_timeout_s=settings.ocr_page_timeout_s,
                layout=settings.ocr_layout,
            ),
        )


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


def _partitioner(spec: str) -> Any:
    module, name = spec.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


def display_path(path: Path) -> str:
    """A printable, JSON-safe path even for names that are not valid UTF-8."""
    raw = os.fsencode(str(path))
    return raw.decode("utf-8", errors="backslashreplace")


def content_hash(data: bytes, signature: str) -> str:
    """Hash of the bytes and of every setting that shapes stored points."""
    digest = hashlib.sha256(data)
    digest.update(b"\0" + signature.encode() + b"\0" + PIPELINE_VERSION.encode())
    return digest.hexdigest()


def _decode_text(data: bytes) -> tuple[str, str]:
    if b"\x00" in data[:8192]:
        raise ParseFailure("binary content in a text file (NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None or best.encoding is None:
        raise ParseFailure("text is not UTF-8 and its encoding could not be detected")
    # Single-byte code pages are often equally plausible; prefer the most common one
    # (Windows-1252, a superset of Latin-1) when it reads the bytes as cleanly.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.05:
            return str(match), "cp1252"
    return str(best), best.encoding


def read_checked(path: Path, limits: Limits, roots: Roots | None = None) -> bytes:
    """Read a file after the checks that need no parser; the opened file must lie inside
    ``roots`` (default: the file itself, i.e. no confinement beyond the path named)."""
    if path.suffix.lower() not in SUPPORTED:
        raise ParseFailure(f"unsupported file type '{path.suffix or '(none)'}'")
    try:
        data = read_confined(path, roots or Roots.of([path]), limits.max_bytes)
    except (OutsideRoots, NotRegular, FileTooLarge) as exc:
        raise ParseFailure(str(exc)) from exc
    except PermissionError as exc:
        raise ParseFailure("permission denied") from exc
    except IsADirectoryError as exc:
        raise ParseFailure("not a regular file") from exc
    except OSError as exc:
        raise ParseFailure(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise ParseFailure("empty file")
    return data


def check_archive(data: bytes, file_type: str, limits: Limits) -> None:
    """Refuse zip bombs before any parser inflates them (DOCX, PPTX, XLSX)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ParseFailure(
            f"damaged or unreadable {file_type.upper()} file: not a zip archive"
        ) from exc
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_archive_members:
            raise ParseFailure(
                f"{file_type.upper()} has {len(members):,} parts, over the "
                f"{limits.max_archive_members:,} limit"
            )
        total = sum(m.file_size for m in members)
        if total > limits.max_archive_bytes:
            raise ParseFailure(
                f"{file_type.upper()} inflates to {total / 1e6:.0f} MB, over the "
                f"{limits.max_archive_bytes / 1e6:.0f} MB limit"
            )
        for m in members:
            ratio = m.file_size / max(m.compress_size, 1)
            if m.file_size > 1_000_000 and ratio > limits.max_archive_ratio:
                raise ParseFailure(
                    f"{file_type.upper()} part {m.filename[:80]!r} inflates {ratio:.0f}x "
                    f"({m.file_size / 1e6:.0f} MB), over the {limits.max_archive_ratio:.0f}x "
                    "limit (a zip bomb?)"
                )


Progress = Callable[[], None]


def parse_file(
    path: Path, data: bytes, digest: str, limits: Limits, progress: Progress | None = None
) -> ParsedDocument:
    """Partition one file's bytes (as read and hashed) with unstructured into our elements.

    Runs unbounded in time: callers that must survive a runaway parse use
    ``ingest.parsing.sandbox.ParseSandbox``, which calls this in a child process (``progress`` is
    called after each OCRed page, which extends the sandbox's deadline)."""
    _install_heuristics(limits.use_spacy)
    file_type, spec = SUPPORTED[path.suffix.lower()]
    if file_type in _ARCHIVES:
        check_archive(data, file_type, limits)
    report = OcrReport()
    if file_type in _IMAGES:
        raw = _image_elements(data, file_type, limits, report, progress)
        return _document(path, data, digest, file_type, raw, limits, report=report)
    if file_type == "pdf":
        _check_pdf(data, limits)
        if limits.pdf_text == "pdfium":
            raw = _pdfium_elements(data, limits, report, progress)
            return _document(path, data, digest, file_type, raw, limits, report=report)
    partition = _partitioner(spec)
    kwargs: dict[str, Any] = {"languages": ["eng"]}
    encoding = "binary"
    if file_type in _TEXT_TYPES:
        text, encoding = _decode_text(data)
        if not text.strip():
            raise ParseFailure("file holds only whitespace")
        kwargs["text"] = text
    else:
        if file_type == "eml":
            _decode_text(data)  # e-mail is text: reject binary content the same way
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


def _pdfium_elements(
    data: bytes, limits: Limits, report: OcrReport, progress: Progress | None = None
) -> list[Any]:
    """PDFium text layer per page; pages without one are OCRed (when enabled). Both are
    classified by unstructured's text partitioner, in page order."""
    from ingest.parsing.pdf_text import pdf_pages

    texts = dict(pdf_pages(data, keep_empty=True))
    scanned = [n for n, text in texts.items() if not has_text_layer(text)]
    if scanned and limits.ocr.enabled:
        if len(scanned) > limits.ocr.max_pages:
            raise ParseFailure(
                f"{len(scanned):,} pages without a text layer, over the "
                f"{limits.ocr.max_pages:,}-page OCR limit (RAG_OCR_MAX_PAGES)"
            )
        pages = _ocr(render_pdf_pages(data, scanned, limits.ocr.dpi), limits, report, progress)
        for number in scanned:
            texts[number] = pages.get(number, "")
    elif scanned and any(has_text_layer(t) for t in texts.values()):
        report.skipped.extend((n, "no text layer (OCR is off: RAG_OCR=false)") for n in scanned)
    return _classified(sorted(texts.items()))


def _image_elements(
    data: bytes, file_type: str, limits: Limits, report: OcrReport, progress: Progress | None = None
) -> list[Any]:
    """An image file (every frame of a multi-page TIFF) read by OCR."""
    from PIL import Image, UnidentifiedImageError

    if not limits.ocr.enabled:
        raise ParseFailure(f"{file_type.upper()} images need OCR, which is off (RAG_OCR=false)")
    Image.MAX_IMAGE_PIXELS = 200_000_000  # a decompression bomb fails, not the worker
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
    # frames are decoded inside _ocr, which turns any failure into the file's one line
    pages = _ocr(image_frames(data, frames), limits, report, progress)
    return _classified(sorted(pages.items()))


def _ocr(
    images: Any, limits: Limits, report: OcrReport, progress: Progress | None
) -> dict[int, str]:
    """Page number -> OCR text for the pages worth indexing (the rest go to the report)."""
    out: dict[int, str] = {}
    try:
        for page in ocr_pages(images, limits.ocr, report):
            if progress is not None:
                progress()
            if usable(page, limits.ocr, report):
                out[page.page] = page.text
    except OcrPageTimeout as exc:
        raise ParseFailure(f"{exc} (RAG_OCR_PAGE_TIMEOUT_S)") from exc
    except Exception as exc:  # Tesseract failed (missing language, crash): the file fails
        name = type(exc).__name__
        raise ParseFailure(f"OCR failed: {name}: {' '.join(str(exc).split())[:200]}") from exc
    return out


def _classified(pages: list[tuple[int, str]]) -> list[Any]:
    from unstructured.partition.text import partition_text

    raw: list[Any] = []
    for number, text in pages:
        if not text.strip():
            continue
        for element in partition_text(text=text, languages=["eng"]):
            element.metadata.page_number = number
            raw.append(element)
    return raw


def _document(
    path: Path,
    data: bytes,
    digest: str,
    file_type: str,
    raw: list[Any],
    limits: Limits,
    encoding: str = "binary",
    report: OcrReport | None = None,
) -> ParsedDocument:
    elements = _elements(raw)
    warnings = [f"page {page}: {why}" for page, why in sorted(report.skipped if report else [])]
    if len(elements) > limits.max_elements:
        raise ParseFailure(f"{len(elements):,} elements, over the {limits.max_elements:,} limit")
    chars = sum(len(e.text) for e in elements)
    if chars > limits.max_chars:
        raise ParseFailure(f"{chars:,} characters of text, over the {limits.max_chars:,} limit")
    if not elements:
        if warnings:  # every page was scanned and left out: say which and why
            raise ParseFailure(
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
            raise ParseFailure(f"no text could be extracted from the PDF ({why}, or damaged)")
        if file_type in _IMAGES:
            raise ParseFailure("no text found in the image by OCR")
        raise ParseFailure("no text found in the file")
    title = next((e.text[:200] for e in elements if e.is_heading), "") or path.stem
    if file_type == "eml":
        title = _email_subject(raw) or title
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


def _elements(raw: list[Any]) -> list[Element]:
    """Our elements; running headers/footers (same text on several pages) are dropped."""
    pages_of: dict[str, set[Any]] = {}
    for e in raw:
        if e.category in _RUNNING:
            pages_of.setdefault(e.text.strip(), set()).add(getattr(e.metadata, "page_number", None))
    out = []
    for e in raw:
        text = (e.text or "").strip()
        if not text or e.category in _SKIPPED_CATEGORIES:
            continue
        if e.category in _RUNNING and len(pages_of.get(text, ())) > 1:
            continue
        if e.category == "Table":
            # One element, as a Markdown table with its header row (chunking keeps it whole
            # or splits it by rows, repeating the header).
            text = html_table_markdown(getattr(e.metadata, "text_as_html", None) or "") or text
        out.append(
            Element(text=text, category=e.category, page=getattr(e.metadata, "page_number", None))
        )
    return out


def _check_pdf(data: bytes, limits: Limits) -> None:
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


def _email_subject(elements: list[Any]) -> str:
    for element in elements:
        subject = getattr(element.metadata, "subject", None)
        if subject:
            return str(subject)[:200]
    return ""


def _reason(file_type: str, exc: Exception) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:200]
    if "password" in (name + text).lower() or "encrypt" in (name + text).lower():
        return f"encrypted {file_type.upper()} (a password is needed)"
    if file_type == "pdf":
        return f"damaged or unreadable PDF: {name}: {text}" if text else f"damaged PDF ({name})"
    if file_type in {"docx", "pptx", "xlsx"}:
        return f"damaged or unreadable {file_type.upper()} file: {name}: {text}"
    return f"{file_type} parser failed: {name}: {text}"
