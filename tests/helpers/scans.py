"""Scans whose truth is known: text PDFs rendered to images (PDFium), wrapped as image-only
PDFs, PNGs or multi-page TIFFs, optionally skewed and noisy."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def render_pages(pdf: bytes, pages: list[int], dpi: int = 200) -> list[Image.Image]:
    """Grayscale images of the given 1-based pages."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    try:
        return [document[n - 1].render(scale=dpi / 72, grayscale=True).to_pil() for n in pages]
    finally:
        document.close()


def blank_page(dpi: int = 200) -> Image.Image:
    return Image.new("L", (int(8.5 * dpi), 11 * dpi), 255)


def skewed_noisy(
    image: Image.Image, degrees: float = 3.0, noise: float = 0.02, seed: int = 7
) -> Image.Image:
    """Rotated by ``degrees`` with a ``noise`` share of random dark and light specks."""
    rotated = image.rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor=255)
    rng = random.Random(seed)
    pixels = rotated.load()
    width, height = rotated.size
    for _ in range(int(width * height * noise)):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.choice((0, 90, 200, 255))
    return rotated


def image_pdf(images: list[Image.Image], dpi: int = 200) -> bytes:
    """An image-only PDF (no text layer): one page per image."""
    out = io.BytesIO()
    first, *rest = [i.convert("RGB") for i in images]
    first.save(out, "PDF", resolution=float(dpi), save_all=True, append_images=rest)
    return out.getvalue()


def save_tiff(images: list[Image.Image], path: Path, dpi: int = 200) -> Path:
    first, *rest = images
    first.save(
        path, "TIFF", save_all=True, append_images=rest, dpi=(dpi, dpi), compression="tiff_deflate"
    )
    return path


def table_image(header: list[str], rows: list[list[str]], dpi: int = 200) -> Image.Image:
    """A ruled table drawn as a scanned page would show it."""
    font = ImageFont.load_default(size=int(dpi * 0.16))
    width = int(8.5 * dpi)
    image = Image.new("L", (width, int(3 + len(rows)) * int(dpi * 0.35) + dpi), 255)
    draw = ImageDraw.Draw(image)
    col = (width - dpi) // len(header)
    y = dpi // 2
    for line in [header, *rows]:
        for i, cell in enumerate(line):
            draw.text((dpi // 2 + i * col + 10, y + 8), cell, fill=0, font=font)
        draw.line((dpi // 2, y, width - dpi // 2, y), fill=0, width=2)
        y += int(dpi * 0.35)
    draw.line((dpi // 2, y, width - dpi // 2, y), fill=0, width=2)
    return image
