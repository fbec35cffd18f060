"""Files to ``ParsedDocument`` with unstructured, offline, with failures as values.

Every way a file can be bad (too big, empty, binary, encrypted, corrupt, unreadable,
unsupported) becomes a ``ParseFailure`` carrying a one-line reason, so a bulk run never
stops on one file and never touches what is already stored for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.documents import Element, ParsedDocument

os.environ.setdefault("DO_NOT_TRACK", "1")  # unstructured pings a telemetry URL otherwise
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)

#: Extension -> (file type label, unstructured partition function name).
SUPPORTED: dict[str, tuple[str, str]] = {
    ".pdf": ("pdf", "unstructured.partition.pdf:partition_pdf"),
    ".docx": ("docx", "unstructured.partition.docx:partition_docx"),
    ".pptx": ("pptx", "unstructured.partition.pptx:partition_pptx"),
    ".html": ("html", "unstructured.partition.html:partition_html"),
    ".htm": ("html", "unstructured.partition.html:partition_html"),
    ".md": ("md", "unstructured.partition.md:partition_md"),
    ".markdown": ("md", "unstructured.partition.md:partition_md"),
    ".txt": ("txt", "unstructured.partition.text:partition_text"),
    ".text": ("txt", "unstructured.partition.text:partition_text"),
    ".rst": ("txt", "unstructured.partition.text:partition_text"),
    ".eml": ("eml", "unstructured.partition.email:partition_email"),
    ".csv": ("csv", "unstructured.partition.csv:partition_csv"),
    ".xlsx": ("xlsx", "unstructured.partition.xlsx:partition_xlsx"),
}
_TEXT_TYPES = {"html", "md", "txt"}
_SKIPPED_CATEGORIES = {"PageBreak", "PageNumber", "Image"}
_RUNNING = {"Header", "Footer"}
#: Bumped whenever parsing or chunking output changes, so unchanged files re-ingest once.
PIPELINE_VERSION = "1"


class ParseFailure(Exception):
    """A file that cannot be ingested; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Limits:
    """Per-run parsing options: the size limit and which PDF text layer to use."""

    max_bytes: int
    pdf_text: str = "pdfium"  # or "unstructured" (pdfminer layout analysis, slower)


_installed = False


def _install_heuristics() -> None:
    global _installed
    if not _installed:
        from ingest import fast_nlp

        fast_nlp.install(use_spacy=os.environ.get("RAG_PARSE_WITH_SPACY", "").lower() == "true")
        _installed = True


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


def read_checked(path: Path, limits: Limits) -> bytes:
    """Read a file after the checks that need no parser."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseFailure(f"cannot stat file: {exc.strerror or exc}") from exc
    if path.suffix.lower() not in SUPPORTED:
        raise ParseFailure(f"unsupported file type '{path.suffix or '(none)'}'")
    if size == 0:
        raise ParseFailure("empty file")
    if size > limits.max_bytes:
        raise ParseFailure(
            f"file is {size / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:.1f} MB limit"
        )
    try:
        return path.read_bytes()
    except PermissionError as exc:
        raise ParseFailure("permission denied") from exc
    except OSError as exc:
        raise ParseFailure(f"cannot read file: {exc.strerror or exc}") from exc


def parse_file(path: Path, data: bytes, digest: str,
               pdf_text: str = "pdfium") -> ParsedDocument:
    """Partition one file with unstructured into our element list."""
    _install_heuristics()
    file_type, spec = SUPPORTED[path.suffix.lower()]
    if file_type == "pdf" and pdf_text == "pdfium":
        _check_pdf(path)
        return _document(path, data, digest, file_type, _pdfium_elements(path))
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
        kwargs["filename"] = str(path)
    if file_type == "pdf":
        _check_pdf(path)
        kwargs.update(strategy="fast", infer_table_structure=False)
    try:
        raw = partition(**kwargs)
    except ParseFailure:
        raise
    except Exception as exc:  # unstructured raises many types; the reason is what matters
        raise ParseFailure(_reason(file_type, exc)) from exc
    return _document(path, data, digest, file_type, raw, encoding)


def _pdfium_elements(path: Path) -> list[Any]:
    """PDFium text layer per page, classified by unstructured's text partitioner."""
    from ingest.pdf_text import pdf_pages
    from unstructured.partition.text import partition_text

    raw: list[Any] = []
    for number, text in pdf_pages(path):
        for element in partition_text(text=text, languages=["eng"]):
            element.metadata.page_number = number
            raw.append(element)
    return raw


def _document(path: Path, data: bytes, digest: str, file_type: str, raw: list[Any],
              encoding: str = "binary") -> ParsedDocument:
    elements = _elements(raw)
    if not elements:
        # unstructured returns [] for many broken PDFs with only an INFO log.
        if file_type == "pdf":
            raise ParseFailure("no text could be extracted from the PDF (scanned, empty or "
                               "damaged)")
        raise ParseFailure("no text found in the file")
    title = next((e.text[:200] for e in elements if e.is_heading), "") or path.stem
    if file_type == "eml":
        title = _email_subject(raw) or title
    doc = ParsedDocument(
        source=display_path(path), file_type=file_type, title=title, elements=elements,
        content_hash=digest, size_bytes=len(data),
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
        out.append(Element(text=text, category=e.category,
                           page=getattr(e.metadata, "page_number", None)))
    return out


def _check_pdf(path: Path) -> None:
    """PDFium opens a PDF in microseconds and names the problem (password, damage) exactly."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseFailure("encrypted PDF (a password is needed)") from exc
        detail = str(exc).split("(PDFium: ")[-1].rstrip(").")
        raise ParseFailure(f"damaged PDF: {detail}") from exc
    try:
        if len(document) == 0:
            raise ParseFailure("PDF has no pages")
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
