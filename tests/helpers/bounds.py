"""Hostile files that probe the parse bounds, small enough to build in a test: many-part
zip bombs, PDFs of blank or giant pages, images larger than their bytes suggest."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from PIL import Image

_CELL = b'<c r="A1" t="s"><v>0</v></c>'


def write_many_part_xlsx(path: Path, parts: int, part_bytes: int, media_bytes: int = 0) -> Path:
    """An XLSX-shaped zip of ``parts`` sheets of ``part_bytes`` each (repetitive XML that
    deflates about 170x), beside an incompressible ``xl/media/image1.png`` of
    ``media_bytes`` (random bytes stored as they are) when asked."""
    sheet = (_CELL * (part_bytes // len(_CELL) + 1))[:part_bytes]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        for n in range(1, parts + 1):
            z.writestr(f"xl/worksheets/sheet{n}.xml", sheet)
        if media_bytes:
            z.writestr("xl/media/image1.png", os.urandom(media_bytes), zipfile.ZIP_STORED)
    return path


def pdf_of_pages(sizes: list[tuple[float, float]]) -> bytes:
    """A PDF of empty pages (no text layer), one of each (width, height) in points."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    try:
        for width, height in sizes:
            document.new_page(width, height).close()
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
    finally:
        document.close()


def blank_frames(
    count: int, size: tuple[int, int] = (425, 550), mark: bool = False
) -> list[Image.Image]:
    """White grayscale pages (a letter page at 50 dpi by default): quick to OCR. With
    ``mark``, each has a small black square and no text: not blank to the eye, so Tesseract
    reads it (and finds no word)."""
    frames = [Image.new("L", size, 255) for _ in range(count)]
    if mark:
        for frame in frames:
            frame.paste(0, (size[0] // 3, size[1] // 3, size[0] // 3 + 6, size[1] // 3 + 6))
    return frames
