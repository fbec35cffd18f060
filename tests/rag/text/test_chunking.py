"""Parents stay within their Llama budget, passages within BGE's window, both cover all."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.documents import Element, ParsedDocument
from rag.text.chunking import Chunker, sentence_spans
from rag.text.tokens import count_tokens

TEXT = (Path(__file__).parents[2] / "fixtures" / "docs" / "Normans.md").read_text()


def doc_from(paragraphs: list[str], titles: set[int] = frozenset()) -> ParsedDocument:
    elements = [
        Element(p, "Title" if i in titles else "NarrativeText", page=i // 3 + 1)
        for i, p in enumerate(paragraphs)
    ]
    return ParsedDocument("/x.md", "md", "X", elements, content_hash="h")


def check(chunker: Chunker, embedder, doc: ParsedDocument) -> None:
    parents = chunker.parents(doc)
    covered = "".join(doc.text[p.start : p.end] for p in parents)
    assert covered.replace("\n", "").replace(" ", "") == doc.text.replace("\n", "").replace(" ", "")
    for parent in parents:
        assert count_tokens(parent.text) == parent.tokens <= chunker.parent_tokens
        assert parent.passages[0].start == parent.start
        assert parent.passages[-1].end == parent.end
        for a, b in zip(parent.passages, parent.passages[1:]):
            assert a.end == b.start  # contiguous: every character is embedded once
        for passage in parent.passages:
            assert passage.text == doc.text[passage.start : passage.end]
            assert embedder.count_tokens(passage.text) <= 512  # with [CLS]/[SEP]


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(
        embedder.token_offsets,
        parent_tokens=1024,
        passage_tokens=200,
        passage_max=embedder.max_tokens,
    )


def test_real_article(chunker, embedder):
    paragraphs = [p for p in TEXT.split("\n\n") if p.strip()]
    doc = doc_from(paragraphs, titles={0})
    check(chunker, embedder, doc)
    parents = chunker.parents(doc)
    assert len(parents) >= 5
    assert all(700 <= p.tokens <= 1024 for p in parents[:-1])  # "about" the target


def test_parents_end_on_sentence_boundaries(chunker):
    doc = doc_from([" ".join(TEXT.split("\n\n")[1:])])  # one giant paragraph
    for parent in chunker.parents(doc)[:-1]:
        assert parent.text.rstrip()[-1] in ".!?\"')"


def test_unbreakable_text_is_split_and_never_truncated(chunker, embedder):
    doc = doc_from(["x" * 20 + " " + "word " * 3000, "a" * 9000])
    check(chunker, embedder, doc)


def test_pages_follow_elements(chunker):
    doc = doc_from([p for p in TEXT.split("\n\n") if p.strip()][:9])
    pages = sorted({page for parent in chunker.parents(doc) for page in parent.pages})
    assert pages == [1, 2, 3]


def test_sentence_spans_cover_text():
    text = 'Dr. Who arrived. He said "hello." Then left!\nNew line e.g. this one'
    spans = sentence_spans(text)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(TEXT) - 1), st.integers(1, 6000)), min_size=1, max_size=8
    ),
    st.integers(64, 2048),
    st.integers(16, 510),
)
def test_property_random_documents(embedder, pieces, parent_tokens, passage_tokens):
    paragraphs = [TEXT[s : s + n].strip() or "x" for s, n in pieces]
    chunker = Chunker(
        embedder.token_offsets,
        parent_tokens=parent_tokens,
        passage_tokens=passage_tokens,
        passage_max=embedder.max_tokens,
    )
    check(chunker, embedder, doc_from(paragraphs))


def _table(rows: int) -> str:
    lines = ["| Depot | Widgets | Gadgets | Manager |", "|---|---|---|---|"]
    lines += [
        f"| Depot {i:03d} Northfield | {1000 + 7 * i} | {50 + i} | Manager {i} |"
        for i in range(rows)
    ]
    return "\n".join(lines)


def _table_doc(rows: int) -> ParsedDocument:
    return ParsedDocument(
        "/t.docx",
        "docx",
        "T",
        [
            Element("Inventory", "Title", page=1),
            Element("The table lists the stock of every depot.", page=1),
            Element(_table(rows), "Table", page=1),
            Element("Totals are audited in January.", page=2),
        ],
        content_hash="h",
    )


def test_a_table_larger_than_a_passage_is_split_by_rows_with_its_header(chunker, embedder):
    doc = _table_doc(120)  # ~3,000 BGE tokens: many passages, more than one 1,024-token parent
    parents = chunker.parents(doc)
    check(chunker, embedder, doc)
    header = "| Depot | Widgets | Gadgets | Manager |\n|---|---|---|---|\n"
    rows_seen = []
    for parent in parents:
        for passage in parent.passages:
            rows = [
                ln
                for ln in passage.text.splitlines()
                if ln.startswith("| Depot 0") or ln.startswith("| Depot 1")
            ]
            if rows:
                assert header in passage.text, passage.text[:120]  # reads as a table
                rows_seen += rows
            for line in passage.text.splitlines():
                if line.startswith("|"):
                    assert line.endswith("|")  # never cut inside a row
    assert len(set(rows_seen)) == 120  # every row, in some passage


def test_a_table_that_fits_a_parent_stays_in_one(chunker, embedder):
    doc = _table_doc(40)
    assert embedder.count_tokens(_table(40)) > chunker.passage_max  # several passages
    assert count_tokens(_table(40)) < chunker.parent_tokens  # one parent
    parents = chunker.parents(doc)
    check(chunker, embedder, doc)
    holding = [p for p in parents if "| Depot 000" in p.text or "| Depot 039" in p.text]
    assert (
        len(holding) == 1 and "| Depot 039" in holding[0].text and "| Depot 000" in holding[0].text
    )
    # the table was split into passages by rows, each with the header
    assert sum("| Depot |" in ps.text for ps in holding[0].passages) >= 2


def test_a_small_table_is_one_passage(chunker):
    doc = _table_doc(5)
    parents = chunker.parents(doc)
    with_rows = [ps for p in parents for ps in p.passages if "| Depot 00" in ps.text]
    assert len(with_rows) == 1 and all(f"| Depot 00{i}" in with_rows[0].text for i in range(5))
