"""Bounds on one file's parse, the failure every bound raises, and the checks that need no
parser (``read_checked``: supported type, confinement, size, not empty).

Every way a file can be bad becomes a ``ParseFailure`` carrying a one-line reason, so a bulk
run never stops on one file and never touches what is already stored for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.files.confine import FileTooLarge, NotRegular, OutsideRoots, Roots, read_confined
from ingest.parsing.formats import SUPPORTED
from ingest.parsing.ocr import OcrConfig
from rag.settings import OcrSettings, ParsingSettings


class ParseFailure(Exception):
    """A file that cannot be ingested; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one file's parse, from the settings (see ``Limits.from_settings``).

    Reading: ``max_bytes`` on the file as stored. Archives (DOCX/PPTX/XLSX are zip files):
    the declared uncompressed total, the member count and the compression ratio of any large
    member (a few KB that inflate to hundreds of MB is a zip bomb; real Office XML compresses
    5-20x). PDFs: the page count. Output: characters and elements. The wall-clock and memory
    limits are enforced by the parse sandbox (``ingest.parsing.sandbox``), which runs the
    parse in a child process it can kill.
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
            max_memory_mb=parsing.parse_max_memory_mb,
            ocr=OcrConfig(
                enabled=ocr.ocr,
                languages=ocr.ocr_languages,
                dpi=ocr.ocr_dpi,
                processes=ocr.ocr_workers,
                min_confidence=ocr.ocr_min_confidence,
                max_pages=ocr.ocr_max_pages,
                page_timeout_s=ocr.ocr_page_timeout_s,
                layout=ocr.ocr_layout,
            ),
        )


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
