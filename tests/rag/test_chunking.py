"""Parents stay within their Llama budget, passages within BGE's window, both cover all."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.chunking import Chunker, sentence_spans
from rag.documents import Element, ParsedDocument
from rag.tokens import count_tokens

TEXT = (Path(__file__).parents[1] / "fixtures" / "docs" / "Normans.md").read_text()


def doc_from(paragraphs: list[str], titles: set[int] = frozenset()) -> ParsedDocument:
    elements = [Element(p, "Title" if i in titles else "NarrativeText", page=i // 3 + 1)
                for i, p in enumerate(paragraphs)]
    return ParsedDocument("/x.md", "md", "X", elements, content_hash="h")


def check(chunker: Chunker, embedder, doc: ParsedDocument) -> None:
    parents = chunker.parents(doc)
    covered = "".join(doc.text[p.start:p.end] for p in parents)
    assert covered.replace("\n", "").replace(" ", "") == doc.text.replace("\n", "").replace(" ", "")
    for parent in parents:
        assert count_tokens(parent.text) == parent.tokens <= chunker.parent_tokens
        assert parent.passages[0].start == parent.start
        assert parent.passages[-1].end == parent.end
        for a, b in zip(parent.passages, parent.passages[1:]):
            assert a.end == b.start  # contiguous: every character is embedded once
        for passage in parent.passages:
            assert passage.text == doc.text[passage.start:passage.end]
            assert embedder.count_tokens(passage.text) <= 512  # with [CLS]/[SEP]


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(embedder.token_offsets, parent_tokens=1024, passage_tokens=200,
                   passage_max=embedder.max_tokens)


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
    text = "Dr. Who arrived. He said \"hello.\" Then left!\nNew line e.g. this one"
    spans = sentence_spans(text)
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(TEXT) - 1), st.integers(1, 6000)), min_size=1,
                max_size=8), st.integers(64, 2048), st.integers(16, 510))
def test_property_random_documents(embedder, pieces, parent_tokens, passage_tokens):
    paragraphs = [TEXT[s:s + n].strip() or "x" for s, n in pieces]
    chunker = Chunker(embedder.token_offsets, parent_tokens=parent_tokens,
                      passage_tokens=passage_tokens, passage_max=embedder.max_tokens)
    check(chunker, embedder, doc_from(paragraphs))
