"""The types that flow between parsing, chunking, storage and retrieval.

Plain dataclasses, so every stage can be tested alone with real inputs and no framework.
Offsets are character offsets into ``ParsedDocument.text``; together with pages they let an
answer cite a document, page and span.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: Namespace for deterministic point ids: the same input always maps to the same id, so a
#: crashed run repeated over the same files overwrites instead of duplicating.
ID_NAMESPACE = uuid.UUID("6f1c1d3e-8a56-4f0e-9a0c-4b8d6a1f2e77")


def document_id(source: str) -> str:
    """Stable per source path, independent of content (a changed file keeps its id)."""
    return str(uuid.uuid5(ID_NAMESPACE, "doc:" + source))


def display_name(name: str, source: str) -> str:
    """What a document is called where users see it: its stored ``name`` (the path relative
    to the root it was ingested from), else the file name of ``source`` (points stored
    before names were): never the absolute server path."""
    return name or PurePosixPath(source).name or source


def parent_point_id(doc_id: str, content_hash: str, index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"parent:{doc_id}:{content_hash}:{index}"))


def passage_point_id(doc_id: str, content_hash: str, parent: int, index: int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"passage:{doc_id}:{content_hash}:{parent}:{index}"))


@dataclass(frozen=True)
class Element:
    """One structural piece of a parsed file (a paragraph, title, list item, table...)."""

    text: str
    category: str = "NarrativeText"
    page: int | None = None
    #: pieces of one table share a group (a table split by rows, its header row repeated)
    group: int | None = None

    @property
    def is_table(self) -> bool:
        return self.category == "Table"

    @property
    def is_heading(self) -> bool:
        return self.category == "Title"


@dataclass
class ParsedDocument:
    """A file turned into ordered elements; ``text`` joins them with blank lines."""

    source: str
    file_type: str
    title: str
    elements: list[Element]
    content_hash: str
    size_bytes: int = 0
    text: str = ""
    spans: list[tuple[int, int]] = field(default_factory=list)
    #: pages read by OCR -> their mean word confidence (0-100); empty for text documents
    ocr_confidence: dict[int, float] = field(default_factory=dict)
    #: what parsing left out and why ("page 3: blank page ..."), shown per file
    warnings: list[str] = field(default_factory=list)
    ocr_seconds: float = 0.0  # part of the parse time spent in OCR
    #: what users see as the document's name: its path relative to the root it was ingested
    #: from (``source``, the absolute path, stays for the store, admins and logs)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.text:
            pieces: list[str] = []
            cursor = 0
            for element in self.elements:
                if pieces:
                    cursor += 2
                self.spans.append((cursor, cursor + len(element.text)))
                cursor += len(element.text)
                pieces.append(element.text)
            self.text = "\n\n".join(pieces)

    @property
    def id(self) -> str:
        return document_id(self.source)

    @property
    def pages(self) -> int | None:
        numbers = [e.page for e in self.elements if e.page is not None]
        return max(numbers) if numbers else None


@dataclass
class Passage:
    """At most one embedding window of text; points to its parent."""

    parent_index: int
    index: int
    start: int
    end: int
    text: str
    tokens: int


@dataclass
class Parent:
    """A coarse chunk (thousands of Llama tokens): the unit packed into the LLM context."""

    index: int
    start: int
    end: int
    text: str
    tokens: int
    pages: list[int]
    heading: str
    passages: list[Passage] = field(default_factory=list)


@dataclass(frozen=True)
class MatchedPassage:
    """A passage that matched a query: document offsets and its score."""

    start: int
    end: int
    score: float


@dataclass
class Hit:
    """A retrieved parent with the passages that matched it (best first)."""

    parent_id: str
    document_id: str
    source: str
    title: str
    file_type: str
    pages: list[int]
    heading: str
    text: str
    start: int
    end: int
    tokens: int
    score: float
    parent_index: int
    passages: list[MatchedPassage] = field(default_factory=list)
    name: str = ""  # the document's display name (``ParsedDocument.name``), never a server path
    hop: int = 1  # the retrieval hop that found it (``rag.answer.hops``): 1, or 2 (a follow-up)
    found_by: str = ""  # the follow-up query that found it (hop 2); empty for the first hop

    @property
    def display_name(self) -> str:
        return display_name(self.name, self.source)

    def span(self, passage: MatchedPassage) -> tuple[int, int]:
        """A matched passage's offsets inside this parent's text."""
        return passage.start - self.start, passage.end - self.start

    def passage_text(self, passage: MatchedPassage) -> str:
        s, e = self.span(passage)
        return self.text[s:e]
