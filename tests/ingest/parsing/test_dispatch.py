"""Every kind of bad file gets its exact one-line reason; good files keep their structure."""

import os
from pathlib import Path

import pytest

from ingest.files.identity import content_hash
from ingest.parsing.dispatch import parse_file
from ingest.parsing.limits import Limits, ParseFailure, read_checked
from tests.conftest import DOCS, FIXTURES
from tests.helpers.pdf import write_pdf

LIMITS = Limits(max_bytes=1_000_000)


def parse(path: Path, limits: Limits = LIMITS):
    data = read_checked(path, limits)
    return parse_file(path, data, content_hash(data, "sig"), limits)


def reason(path: Path, limits: Limits = LIMITS) -> str:
    with pytest.raises(ParseFailure) as err:
        parse(path, limits)
    return str(err.value)


def test_corrupt_pdf(tmp_path):
    assert reason(FIXTURES / "corrupt.pdf").startswith("damaged PDF")


def test_encrypted_pdf(tmp_path):
    import pikepdf

    plain = write_pdf(tmp_path / "plain.pdf", [["Secret text here."]])
    with pikepdf.open(plain) as pdf:
        pdf.save(tmp_path / "locked.pdf", encryption=pikepdf.Encryption(owner="o", user="pw"))
    assert reason(tmp_path / "locked.pdf") == "encrypted PDF (a password is needed)"


def test_pdf_without_text_is_a_failure_not_an_empty_document(tmp_path):
    """A blank page has no text layer; OCR finds nothing on it either, and says so."""
    assert reason(write_pdf(tmp_path / "blank.pdf", [[]])) == (
        "no page could be indexed: page 1: blank page (no text found by OCR)"
    )
    from dataclasses import replace

    from ingest.parsing.ocr import OcrConfig

    no_ocr = replace(LIMITS, ocr=OcrConfig(enabled=False))
    assert reason(tmp_path / "blank.pdf", no_ocr).startswith(
        "no text could be extracted from the PDF (no text layer and OCR is off"
    )
    pdfminer = replace(LIMITS, pdf_text="unstructured")  # OCR works on the PDFium path only
    assert reason(tmp_path / "blank.pdf", pdfminer).startswith(
        "no text could be extracted from the PDF (no text layer: OCR needs RAG_PDF_TEXT=pdfium"
    )


def test_empty_file(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"")
    assert reason(tmp_path / "e.txt") == "empty file"


def test_whitespace_only(tmp_path):
    (tmp_path / "w.md").write_text(" \n\n\t ")
    assert reason(tmp_path / "w.md") == "file holds only whitespace"


def test_binary_with_text_extension(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50)
    assert reason(tmp_path / "b.txt") == "binary content in a text file (NUL bytes)"


def test_non_utf8_text_is_decoded_not_mangled(tmp_path):
    (tmp_path / "latin.txt").write_bytes(
        "Café crème brûlée in Zürich, naïve façade. ".encode("cp1252") * 20
    )
    doc = parse(tmp_path / "latin.txt")
    assert "Café crème brûlée" in doc.text


def test_unsupported_type(tmp_path):
    (tmp_path / "x.exe").write_bytes(b"MZ")
    assert reason(tmp_path / "x.exe") == "unsupported file type '.exe'"


def test_too_big(tmp_path):
    (tmp_path / "big.txt").write_text("word " * 1000)
    assert reason(tmp_path / "big.txt", Limits(max_bytes=1000)) == (
        "file is 0.0 MB, over the 0.0 MB limit"
    )


def test_unreadable(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_text("x")
    p.chmod(0)
    if os.geteuid() != 0:
        assert reason(p) == "permission denied"
        return
    # Root reads everything through CAP_DAC_OVERRIDE: check in a root process without the
    # capabilities that bypass file permissions. (Switching to an unprivileged user instead
    # fails when the checkout sits under a 0700 folder such as `mktemp -d`'s.)
    import shutil
    import subprocess
    import sys

    if not shutil.which("setpriv"):
        pytest.skip("no setpriv to drop capabilities")
    code = (
        "from pathlib import Path; from ingest.parsing.limits import *\n"
        f"try: read_checked(Path({str(p)!r}), Limits(10**6))\n"
        "except ParseFailure as e: print(e)"
    )
    no_override = "-dac_override,-dac_read_search"
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            no_override,
            "--inh-caps",
            no_override,
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    assert out.stdout.strip() == "permission denied", out.stderr


def test_folder_with_a_file_extension(tmp_path):
    (tmp_path / "dir.txt").mkdir()
    assert reason(tmp_path / "dir.txt") == "not a regular file"


def test_corrupt_docx(tmp_path):
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 this is not a zip archive" * 10)
    assert reason(tmp_path / "broken.docx").startswith("damaged or unreadable DOCX file")


def test_markdown_keeps_headings():
    doc = parse(DOCS / "Normans.md")
    assert doc.title == "Normans"
    assert doc.elements[0].is_heading


def test_pdf_pages_and_offsets(tmp_path):
    doc = parse(write_pdf(tmp_path / "p.pdf", [["Alpha page one text."], ["Beta page two text."]]))
    assert [e.page for e in doc.elements] == [1, 2]
    for element, (start, end) in zip(doc.elements, doc.spans):
        assert doc.text[start:end] == element.text


def test_email_subject_is_title():
    doc = parse(DOCS / "reactor-update.eml")
    assert doc.title == "Zorblax reactor: commissioning update"
    assert "Oslo, Norway" in doc.text


def test_office_formats():
    assert "Heading Paragraph" in parse(DOCS / "par-known-paragraphs.docx").text
    assert parse(DOCS / "txt-text.pptx").pages == 2


def test_csv_and_xlsx_tables(tmp_path):
    import openpyxl

    (tmp_path / "people.csv").write_text("name,city\nAda,London\nGrace,Arlington\n")
    assert parse(tmp_path / "people.csv").text == (
        "| name | city |\n|---|---|\n| Ada | London |\n| Grace | Arlington |"
    )  # Markdown
    book = openpyxl.Workbook()
    book.active.append(["product", "price"])
    book.active.append(["Quillon valve", 42])
    book.save(tmp_path / "prices.xlsx")
    doc = parse(tmp_path / "prices.xlsx")
    assert "| product | price |\n|---|---|\n| Quillon valve | 42 |" in doc.text
    assert doc.pages == 1
