"""The file types ingestion reads: extension -> (file type, unstructured partitioner).

One list for the parser, the upload checks and the page (``GET /v1/file-types``).
"""

from __future__ import annotations

#: Image files become documents through OCR.
IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".tif": "tiff", ".tiff": "tiff"}

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
    **{suffix: (kind, "ocr") for suffix, kind in IMAGE_SUFFIXES.items()},
}

#: The distinct file types, in the order above (what the page offers as filters).
FILE_TYPES: tuple[str, ...] = tuple(dict.fromkeys(t for t, _ in SUPPORTED.values()))
