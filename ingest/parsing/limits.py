"""Bounds on one file's parse, the failure every bound raises, and the checks that need no
parser (``read_checked``: supported type, confinement, size, not empty).

Every way a file can be bad becomes a ``ParseFailure`` carrying a one-line reason, so a bulk
run never stops on one file and never touches what is already stored for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.files.confine import (
    ConfinedFile,
    FileTooLarge,
    HardLinked,
    NotRegular,
    OutsideRoots,
    Roots,
    read_confined_file,
)
from ingest.parsing.formats import SUPPORTED
from ingest.parsing.ocr import OcrConfig
from rag.settings import OcrSettings, ParsingSettings


class ParseFailure(Exception):
    """A file that cannot be ingested; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one file's parse, from the settings (see ``Limits.from_settings``).

    Reading: ``max_bytes`` on the file as stored, hard links refused unless
    ``allow_hardlinks``. Archives (DOCX/PPTX/XLSX are zip files): the declared uncompressed
    total, the member count and the compression ratio of the parts taken together
    (``ingest.parsing.archives``: a few KB that inflate to hundreds of MB is a zip bomb; real
    Office XML compresses 5-20x). PDFs: the page count. OCR (``OcrConfig``): pages, pixels
    per page, blank pages in a row. Output: characters and elements. Time and memory are
    enforced by the parse sandbox (``ingest.parsing.sandbox``), which runs the parse in a
    child process it can kill: ``timeout_s`` without progress (each OCRed page is progress),
    ``max_wall_s`` in all whatever the progress, ``max_memory_mb`` for the child and its
    Tesseract processes together.
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
    max_wall_s: float = 900.0
    max_memory_mb: int = 2048
    allow_hardlinks: bool = False
    ocr: OcrConfig = OcrConfig()

    @classmethod
    def from_settings(cls, parsing: ParsingSettings, ocr: OcrSettings) -> Limits:
        return cls(
            max_bytes=int(parsing.max_file_mb * 1_000_000),
            pdf_text=parsing.pdf_text,
            use_spacy=parsing.parse_with_spacy,
            max_archive_bytes=int(parsing.parse_max_archive_mb * 1_000_000),
            max_archive_ratio=parsing.parse_max_archive_ratio,
            max_archive_members=parsing.parse_max_archive_members,
            max_pages=parsing.parse_max_pages,
            max_chars=parsing.parse_max_chars,
            max_elements=parsing.parse_max_elements,
            timeout_s=parsing.parse_timeout_s,
            max_wall_s=parsing.parse_max_wall_s,
            max_memory_mb=parsing.parse_max_memory_mb,
            allow_hardlinks=parsing.ingest_allow_hardlinks,
            ocr=OcrConfig(
                enabled=ocr.ocr,
                languages=ocr.ocr_languages,
                dpi=ocr.ocr_dpi,
                processes=ocr.ocr_workers,
                min_confidence=ocr.ocr_min_confidence,
                max_pages=ocr.ocr_max_pages,
                max_blank_run=ocr.ocr_max_blank_run,
                max_pixels=ocr.ocr_max_pixels,
                page_timeout_s=ocr.ocr_page_timeout_s,
                layout=ocr.ocr_layout,
            ),
        )


def read_checked(path: Path, limits: Limits, roots: Roots | None = None) -> bytes:
    """The bytes of ``read_checked_file``."""
    return read_checked_file(path, limits, roots).data


def read_checked_file(path: Path, limits: Limits, roots: Roots | None = None) -> ConfinedFile:
    """Read a file after the checks that need no parser; the opened file must lie inside
    ``roots`` (default: the file itself, i.e. no confinement beyond the path named). Its
    ``real`` path is the document's identity (``ingest.files.identity``)."""
    if path.suffix.lower() not in SUPPORTED:
        raise ParseFailure(f"unsupported file type '{path.suffix or '(none)'}'")
    try:
        read = read_confined_file(
            path, roots or Roots.of([path]), limits.max_bytes, limits.allow_hardlinks
        )
    except (OutsideRoots, NotRegular, HardLinked, FileTooLarge) as exc:
        raise ParseFailure(str(exc)) from exc
    except PermissionError as exc:
        raise ParseFailure("permission denied") from exc
    except IsADirectoryError as exc:
        raise ParseFailure("not a regular file") from exc
    except OSError as exc:
        raise ParseFailure(f"cannot read file: {exc.strerror or exc}") from exc
    if not read.data:
        raise ParseFailure("empty file")
    return read
