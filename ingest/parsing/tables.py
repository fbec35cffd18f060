"""Tables as Markdown: one element per table, header row first.

unstructured gives a table's flattened text ("Region Q1 Q2 North 10 12 ...", unreadable to
BGE and to the model) and, for DOCX, PPTX, XLSX, HTML and CSV, its structure as
``metadata.text_as_html``. That HTML becomes a Markdown table here: the first row (the
``<thead>`` row when there is one) is the header, every row has as many cells as the widest,
cell text is one line with ``|`` escaped. ``rag.text.chunking`` keeps the table whole or splits
it by rows with this header repeated.
"""

from __future__ import annotations


def _cell(node) -> str:
    text = " ".join("".join(node.itertext()).split())
    return text.replace("\\", "\\\\").replace("|", "\\|")


def html_table_markdown(html: str) -> str | None:
    """The first table of ``html`` as Markdown, or None when it has no rows."""
    if not html or "<t" not in html.lower():
        return None
    from lxml import html as lxml_html

    try:
        root = lxml_html.fromstring(html)
    except Exception:  # lxml raises several types on broken markup
        return None
    rows = []
    for tr in root.iter("tr"):
        cells = []
        for cell in tr:
            if not isinstance(cell.tag, str) or cell.tag.lower() not in ("td", "th"):
                continue
            value = _cell(cell)
            span = cell.get("colspan", "1")
            cells.extend([value] * (int(span) if span.isdigit() and 0 < int(span) <= 50 else 1))
        if any(c for c in cells):
            rows.append(cells)
    if not rows:
        return None
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)
