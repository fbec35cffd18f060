"""unstructured's elements to ours: page texts classified, running headers and footers
dropped, tables as Markdown.

unstructured is imported inside the functions only: its modules read the offline settings
and the fast heuristics when first imported, which ``dispatch`` installs before any parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.parsing.tables import html_table_markdown
from rag.documents import Element

if TYPE_CHECKING:
    from unstructured.documents.elements import Element as RawElement

_SKIPPED_CATEGORIES = {"PageBreak", "PageNumber", "Image"}
_RUNNING = {"Header", "Footer"}


def classified(pages: list[tuple[int, str]]) -> list[RawElement]:
    """Each page's text classified by unstructured's text partitioner, in page order."""
    from unstructured.partition.text import partition_text

    raw: list[RawElement] = []
    for number, text in pages:
        if not text.strip():
            continue
        for element in partition_text(text=text, languages=["eng"]):
            element.metadata.page_number = number
            raw.append(element)
    return raw


def to_elements(raw: list[RawElement]) -> list[Element]:
    """Our elements; running headers/footers (same text on several pages) are dropped."""
    pages_of: dict[str, set[int | None]] = {}
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
