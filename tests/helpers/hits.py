"""Retrieved parents (``rag.documents.Hit``) built by hand, for the answer-side tests."""

from __future__ import annotations

from typing import Any

from rag.documents import Hit


def make_hit(text: str, doc: str = "d", file_type: str = "txt", **fields: Any) -> Hit:
    """A hit of ``text`` from document ``doc`` (parent ``p-<doc>``, found at
    ``/<doc>.<file_type>`` and titled ``doc``), spanning ``start`` (0 unless given) to
    ``start + len(text)``, 10 tokens, score 1.0; ``fields`` sets any other Hit field."""
    start = fields.pop("start", 0)
    values: dict[str, Any] = {
        "parent_id": f"p-{doc}",
        "document_id": doc,
        "source": f"/{doc}.{file_type}",
        "title": doc,
        "file_type": file_type,
        "pages": [],
        "heading": "",
        "text": text,
        "start": start,
        "end": start + len(text),
        "tokens": 10,
        "score": 1.0,
        "parent_index": 0,
    }
    return Hit(**(values | fields))
