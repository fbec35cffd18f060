"""Tables from real DOCX, XLSX and HTML files become one Markdown element with its header
row; a row's value is found by a query naming its column and row label."""

from __future__ import annotations

from pathlib import Path

import docx
import openpyxl

from ingest.indexer import Indexer
from ingest.parsing.dispatch import parse_file
from ingest.parsing.limits import Limits
from ingest.parsing.tables import html_table_markdown
from rag.answer.pipeline import RagPipeline
from rag.store.documents import EVERYTHING
from rag.store.qdrant_store import QdrantStore

LIMITS = Limits(max_bytes=50_000_000)
HEADER = "| Depot | Widgets | Gadgets | Manager |\n|---|---|---|---|"


def write_inventory_docx(path: Path, rows: int = 80) -> Path:
    d = docx.Document()
    d.add_heading("Regional depot inventory", 1)
    d.add_paragraph("The table lists the stock of every depot at the end of the quarter.")
    table = d.add_table(rows=1, cols=4)
    for cell, name in zip(table.rows[0].cells, ["Depot", "Widgets", "Gadgets", "Manager"]):
        cell.text = name
    for i in range(rows):
        cells = table.add_row().cells
        cells[0].text = "Kestrel Harbour" if i == 41 else f"Depot {i:03d} Northfield"
        cells[1].text = "4711" if i == 41 else str(1000 + 7 * i)
        cells[2].text, cells[3].text = str(50 + i), f"Manager {i}"
    d.add_paragraph("Totals are audited in January.")
    d.save(path)
    return path


def _tables(doc) -> list[str]:
    return [e.text for e in doc.elements if e.is_table]


def test_html_table_markdown_keeps_header_spans_and_pipes():
    html = (
        "<table><thead><tr><th>Item</th><th colspan='2'>Price | EUR</th></tr></thead>"
        "<tbody><tr><td>Bolt\nM4</td><td>0.10</td><td>net</td></tr>"
        "<tr><td></td><td></td><td></td></tr><tr><td>Nut</td></tr></tbody></table>"
    )
    assert html_table_markdown(html) == (
        "| Item | Price \\| EUR | Price \\| EUR |\n|---|---|---|\n"
        "| Bolt M4 | 0.10 | net |\n| Nut |  |  |"
    )
    assert html_table_markdown("<p>no table</p>") is None
    assert html_table_markdown("") is None


def test_docx_table_is_one_markdown_element_with_its_header(tmp_path):
    path = write_inventory_docx(tmp_path / "inventory.docx")
    doc = parse_file(path, path.read_bytes(), "h", LIMITS)
    tables = _tables(doc)
    assert len(tables) == 1 and tables[0].startswith(HEADER)
    assert "| Kestrel Harbour | 4711 | 91 | Manager 41 |" in tables[0]
    assert len(tables[0].splitlines()) == 82  # header, separator, 80 rows


def test_xlsx_and_html_tables_become_markdown(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Prices"
    ws.append(["Product", "Unit price (EUR)", "Supplier"])
    for i in range(12):
        ws.append([f"Bolt M{i}", f"{0.1 * i:.2f}", f"Supplier {i % 5}"])
    xlsx = tmp_path / "prices.xlsx"
    wb.save(xlsx)
    tables = _tables(parse_file(xlsx, xlsx.read_bytes(), "h", LIMITS))
    assert tables and tables[0].startswith(
        "| Product | Unit price (EUR) | Supplier |\n|---|---|---|"
    )
    assert "| Bolt M7 | 0.70 | Supplier 2 |" in tables[0]

    html = tmp_path / "rates.html"
    html.write_text(
        "<html><body><h1>Rates</h1><p>Hourly rates by role.</p><table>"
        "<tr><th>Role</th><th>Rate</th></tr><tr><td>Welder</td><td>62</td></tr>"
        "<tr><td>Rigger</td><td>58</td></tr></table></body></html>"
    )
    tables = _tables(parse_file(html, html.read_bytes(), "h", LIMITS))
    assert tables == ["| Role | Rate |\n|---|---|\n| Welder | 62 |\n| Rigger | 58 |"]


def test_a_table_value_is_found_by_column_and_row_label(settings_factory, embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    write_inventory_docx(folder / "inventory.docx")
    # another document sharing the row label's first word (not the column name)
    (folder / "notes.txt").write_text(
        "Kestrel release notes. The Kestrel app stores its "
        "settings offline and syncs them when online."
    )
    settings = settings_factory()
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        summary = Indexer(settings, embedder, store).run([folder])
        assert summary.ingested == 2 and not summary.failed
        pipeline = RagPipeline(settings, embedder, store, None)
        hits = pipeline.search(
            "How many widgets does the Kestrel Harbour depot hold?", top_k=3, scope=EVERYTHING
        )
        best = hits[0]
        assert best.source.endswith("inventory.docx")
        passage = best.passage_text(best.passages[0])
        assert "| Kestrel Harbour | 4711 |" in passage
        assert passage.lstrip().startswith(HEADER) or HEADER in passage  # reads as a table
        # no stored passage of the table lacks its header row
        for parent in Indexer(settings, embedder, store).chunker.parents(
            parse_file(
                folder / "inventory.docx", (folder / "inventory.docx").read_bytes(), "h", LIMITS
            )
        ):
            for ps in parent.passages:
                if "| Depot 0" in ps.text or "| Kestrel Harbour" in ps.text:
                    assert HEADER in ps.text
    finally:
        store.close()
