"""Coarse parents for the LLM, fine passages for the embedder, both on natural boundaries.

Long-context models answer best from whole sections, but BGE reads at most 512 tokens. So a
document is cut twice: into parents of about ``parent_tokens`` Llama 3.1 tokens along
section, paragraph and sentence boundaries, and each parent into passages that cover it
completely and never exceed the embedder's window (a passage that would be truncated is a
bug here, not a warning downstream).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rag.documents import Element, Parent, ParsedDocument, Passage
from rag.text.tokens import count_tokens, encode, llama3_encoding

#: Maps a text to the (start, end) character offsets of its embedding-model tokens.
TokenOffsets = Callable[[str], list[tuple[int, int]]]

# A sentence ends at . ! ? (optionally closed by quotes/brackets) before whitespace, or at a
# line break. Abbreviations like "e.g. the" stay joined because the next word is lower case.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")


@dataclass(frozen=True)
class _Unit:
    """A span of the document text that chunking may not cut further, with its page."""

    start: int
    end: int
    page: int | None
    heading: str
    section_start: bool


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentence spans that together cover it exactly."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.end() > cursor:
            spans.append((cursor, match.end()))
            cursor = match.end()
    if cursor < end:
        spans.append((cursor, end))
    return [s for s in spans if text[s[0] : s[1]].strip()] or [(start, end)]


def _split_by_llama_tokens(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Last resort for a single sentence longer than a parent: cut between tokens."""
    tokens = encode(text[start:end])
    enc = llama3_encoding()
    spans, cursor = [], start
    for i in range(0, len(tokens), limit):
        piece = enc.decode(tokens[i : i + limit])
        spans.append((cursor, min(end, cursor + len(piece))))
        cursor += len(piece)
    return spans


class Chunker:
    """Turns parsed documents into parents and passages.

    ``passage_offsets`` is the embedding model's tokenizer (offsets without special tokens)
    and ``passage_max`` the most tokens one passage may have (512 minus [CLS]/[SEP] for BGE).
    """

    def __init__(
        self,
        passage_offsets: TokenOffsets,
        parent_tokens: int = 4096,
        passage_tokens: int = 256,
        passage_max: int = 510,
    ) -> None:
        if passage_tokens > passage_max:
            raise ValueError(f"passage_tokens {passage_tokens} exceeds the model's {passage_max}")
        self.passage_offsets = passage_offsets
        self.parent_tokens = parent_tokens
        self.passage_tokens = passage_tokens
        self.passage_max = passage_max

    # --- tables ----------------------------------------------------------------------------
    def _embed_tokens(self, text: str) -> int:
        return len(self.passage_offsets(text))

    def table_pieces(self, table: str) -> list[str]:
        """A Markdown table as passage-sized pieces, split between rows, each starting with
        the header row (and its separator), so every piece reads as a table."""
        if self._embed_tokens(table) <= self.passage_max:
            return [table]
        lines = table.split("\n")
        if len(lines) < 4 or not lines[1].startswith("|---"):
            return [table]
        header = lines[:2]
        head_tokens = self._embed_tokens("\n".join(header))
        pieces: list[str] = []
        rows: list[str] = []
        used = head_tokens
        for row in lines[2:]:
            n = self._embed_tokens(row)
            if rows and used + n > self.passage_tokens:
                pieces.append("\n".join(header + rows))
                rows, used = [], head_tokens
            rows.append(row)
            used += n
        if rows:
            pieces.append("\n".join(header + rows))
        return pieces

    def split_tables(self, doc: ParsedDocument) -> None:
        """Tables larger than a passage become row pieces sharing a ``group`` (in place: the
        document's text and spans are rebuilt, so parents' offsets refer to them)."""
        if not any(e.is_table for e in doc.elements):
            return
        elements: list[Element] = []
        for number, element in enumerate(doc.elements):
            if not element.is_table:
                elements.append(element)
                continue
            for piece in self.table_pieces(element.text):
                elements.append(Element(piece, element.category, element.page, group=number))
        doc.elements, doc.text, doc.spans = elements, "", []
        doc.__post_init__()

    # --- parents ---------------------------------------------------------------------------
    def _units(self, doc: ParsedDocument) -> Iterator[tuple[_Unit, int]]:
        heading = doc.title
        skip_to = 0  # past a table yielded whole: its pieces were one unit
        split: int | None = None  # the group of a table too large for one parent
        for i, (element, (start, end)) in enumerate(zip(doc.elements, doc.spans)):
            if i < skip_to:
                continue
            if element.is_heading:
                heading = element.text.strip()[:200]
            if element.group is not None and element.group != split:
                last = i
                while (
                    last + 1 < len(doc.elements) and doc.elements[last + 1].group == element.group
                ):
                    last += 1
                if last > i:  # a table in several pieces: whole in one parent if it fits
                    whole_end = doc.spans[last][1]
                    tokens = count_tokens(doc.text[start:whole_end])
                    if tokens <= self.parent_tokens:
                        skip_to = last + 1
                        yield _Unit(start, whole_end, element.page, heading, False), tokens
                        continue
                    split = element.group  # counted once; its pieces go one by one
            tokens = count_tokens(doc.text[start:end])
            if tokens <= self.parent_tokens:
                yield _Unit(start, end, element.page, heading, element.is_heading), tokens
                continue
            first = True
            for s, e in sentence_spans(doc.text, start, end):
                n = count_tokens(doc.text[s:e])
                pieces = (
                    [(s, e)]
                    if n <= self.parent_tokens
                    else _split_by_llama_tokens(doc.text, s, e, self.parent_tokens)
                )
                for ps, pe in pieces:
                    count = n if len(pieces) == 1 else count_tokens(doc.text[ps:pe])
                    yield _Unit(ps, pe, element.page, heading, first and element.is_heading), count
                    first = False

    def parents(self, doc: ParsedDocument) -> list[Parent]:
        self.split_tables(doc)
        parents: list[Parent] = []
        group: list[tuple[_Unit, int]] = []

        def estimate() -> int:
            return sum(n for _, n in group) + len(group) - 1

        def close() -> None:
            """Emit the longest head of ``group`` that truly fits; keep the rest as the next."""
            nonlocal group
            carry: list[tuple[_Unit, int]] = []
            while group:
                start, end = group[0][0].start, group[-1][0].end
                tokens = count_tokens(doc.text[start:end])
                if tokens <= self.parent_tokens or len(group) == 1:
                    units = [u for u, _ in group]
                    pages = sorted({u.page for u in units if u.page is not None})
                    parents.append(
                        Parent(
                            len(parents),
                            start,
                            end,
                            doc.text[start:end],
                            tokens,
                            pages,
                            units[0].heading,
                        )
                    )
                    break
                carry.insert(0, group.pop())  # separators merged into more tokens than estimated
            group = carry

        for unit, tokens in self._units(doc):
            # Prefer to start a parent at a section heading once the current one is 3/4 full.
            if group and unit.section_start and estimate() >= self.parent_tokens * 3 // 4:
                close()
            while group and estimate() + tokens + 1 > self.parent_tokens:
                close()
            group.append((unit, tokens))
        while group:
            close()
        tables = [span for e, span in zip(doc.elements, doc.spans) if e.is_table]
        for parent in parents:
            inside = [(a, b) for a, b in tables if parent.start <= a and b <= parent.end]
            parent.passages = self.passages(doc.text, parent, inside)
        return parents

    # --- passages --------------------------------------------------------------------------
    def passages(
        self, text: str, parent: Parent, whole: Sequence[tuple[int, int]] = ()
    ) -> list[Passage]:
        """Cover ``parent`` with passages of at most ``passage_max`` embedder tokens; the
        ``whole`` spans (document offsets of table pieces) are never cut when they fit."""
        body = text[parent.start : parent.end]
        offsets = self.passage_offsets(body)
        starts = [s for s, _ in offsets]

        def tokens_in(s: int, e: int) -> int:
            return _count_between(starts, s, e)

        sentences = sentence_spans(body)
        for a, b in whole:
            a, b = a - parent.start, b - parent.start
            if tokens_in(a, b) <= self.passage_max:  # one span instead of its row "sentences"
                sentences = (
                    [sp for sp in sentences if sp[1] <= a]
                    + [(a, b)]
                    + [sp for sp in sentences if sp[0] >= b]
                )
        spans: list[tuple[int, int, int]] = []  # (start, end, tokens) relative to body
        for s, e in sentences:
            n = tokens_in(s, e)
            if n <= self.passage_max:
                spans.append((s, e, n))
            else:
                spans.extend(_split_by_offsets(offsets, s, e, self.passage_max))

        passages: list[Passage] = []
        cur_start, cur_end, cur_tokens = None, 0, 0
        for s, e, _ in spans:
            if cur_start is not None:
                merged = tokens_in(cur_start, e)
                if merged <= self.passage_tokens:
                    cur_end, cur_tokens = e, merged
                    continue
                passages.append(
                    self._passage(parent, len(passages), body, cur_start, cur_end, cur_tokens)
                )
            cur_start, cur_end, cur_tokens = s, e, tokens_in(s, e)
        if cur_start is not None:
            passages.append(
                self._passage(parent, len(passages), body, cur_start, cur_end, cur_tokens)
            )
        # Passages cover the gaps between sentences too, so the parent is covered completely.
        for i, passage in enumerate(passages[:-1]):
            nxt = passages[i + 1]
            passage.end = nxt.start
        if passages:
            passages[0].start = parent.start
            passages[-1].end = parent.end
            for passage in passages:
                passage.text = text[passage.start : passage.end]
        return passages

    def _passage(self, parent: Parent, index: int, body: str, s: int, e: int, n: int) -> Passage:
        if n > self.passage_max:
            raise AssertionError(f"passage of {n} tokens exceeds {self.passage_max}")
        return Passage(parent.index, index, parent.start + s, parent.start + e, body[s:e], n)


def _count_between(starts: list[int], s: int, e: int) -> int:
    from bisect import bisect_left

    return bisect_left(starts, e) - bisect_left(starts, s)


def _split_by_offsets(
    offsets: list[tuple[int, int]], s: int, e: int, limit: int
) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence between embedder tokens, preferring word starts."""
    inside = [(a, b) for a, b in offsets if s <= a < e]
    pieces: list[tuple[int, int, int]] = []
    i = 0
    while i < len(inside):
        j = min(i + limit, len(inside))
        if j < len(inside):
            # back off to a token that starts a new word (preceded by a gap), if any
            k = j
            while k > i + limit // 2 and inside[k][0] == inside[k - 1][1]:
                k -= 1
            if k > i + limit // 2:
                j = k
        start = inside[i][0] if pieces else s
        end = inside[j][0] if j < len(inside) else e
        pieces.append((start, end, j - i))
        i = j
    return pieces
