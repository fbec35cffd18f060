"""Citations: what the answer's [n] markers turned out to be.

A citation the model writes is kept only when its source states most of the content words of
the sentences citing it, and most of what they add to the question (``SUPPORT_COVER``);
numbers naming no source are reported apart (``invalid``), unsupported ones too
(``unsupported``), and neither is ever shown as a citation. An answer with no [n] at all is
attributed by word overlap instead, each such citation labelled ``attributed``, and only
when most of the answer is stated by the sources (``attribute``). Stop words are never
evidence. Offsets point into the document text, for highlighting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.answer.budget import Source

_CITATION = re.compile(r"\[(\s*\d+(?:\s*[,;]\s*\d+)*\s*)\]")


def without_markers(text: str) -> str:
    """``text`` without its [n] markers (and the space they leave before punctuation)."""
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", _CITATION.sub("", text)).strip()


# A sentence ends at . ! ? or a newline, and also keeps the [n] markers that follow its stop.
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*(?:\s*\[[\d,;\s]+\])*")
_WORDS = re.compile(r"\w+")
_STOP = frozenset(
    """the and for are was were has have had not but this that with from they them
their there which who whom what when where why how all any can could would should will its
into than then also been being about after before over under such these those our your his her
she him you one two per via out off yes did does""".split()
)


@dataclass
class Citation:
    n: int
    source: Source
    quote: str
    quote_start: int  # offsets in the document text, for highlighting
    quote_end: int
    kind: str = "model"  # "model": the model wrote [n]; "attributed": matched by overlap


def cited_numbers(answer: str) -> list[int]:
    """Numbers in [n], [n, m] or [n][m] form, in order of first appearance."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        for number in _numbers(match):
            if number not in seen:
                seen.append(number)
    return seen


@dataclass
class CitationCheck:
    """What the answer's [n] markers turned out to be."""

    citations: list[Citation] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)  # no source has that number
    unsupported: list[int] = field(default_factory=list)  # the source does not state it


def _cites(sentence: str, n: int) -> bool:
    return any(n in _numbers(m) for m in _CITATION.finditer(sentence))


def _numbers(match: re.Match[str]) -> list[int]:
    return [int(part) for part in re.split(r"[,;]", match.group(1))]


#: Share of a sentence's content words its cited source must contain for the citation to
#: stand (the rest may be connective wording of the model's own).
SUPPORT_COVER = 0.5
#: Share of an answer sentence's content words one source sentence must hold to support it.
ATTRIBUTION_COVER = 0.6
#: Content words an answer sentence needs to be checked for attribution at all.
_MIN_CLAIM_WORDS = 3


def _claim_words(text: str) -> set[str]:
    """What a sentence claims, as words: its content words without [n] markers and stop
    words (shared stop words are no evidence: "the Normans did not ..." is not stated by
    "the Normans did not have ...")."""
    return _content_words(_CITATION.sub(" ", text)) - _STOP


def _news(wanted: set[str], given: set[str]) -> set[str]:
    """The claim's words beyond the question's: a sentence that only restates the question
    is supported by any source that mentions its subject, so it must be the rest that
    a source states."""
    return wanted - given


def supports(source_text: str, claim: str, question: str = "") -> bool:
    """Whether ``source_text`` states ``claim``: most of its content words, and most of
    those it adds to the ``question``."""
    wanted = _claim_words(claim)
    if not wanted:
        return True  # nothing checkable ("See [2].")
    have = _content_words(source_text)
    news = _news(wanted, _claim_words(question))
    if news and len(news & have) / len(news) < SUPPORT_COVER:
        return False
    return len(wanted & have) / len(wanted) >= SUPPORT_COVER


def parse_citations(answer: str, sources: Sequence[Source], question: str = "") -> CitationCheck:
    """Map [n] to sources. Numbers naming no source, and citations whose source does not
    state the sentences citing it (``supports``), are reported apart and never shown as
    citations.

    When the model cited nothing at all, answer sentences are attributed by overlap instead
    (``attribute``).
    """
    by_n = {s.n: s for s in sources}
    check = CitationCheck()
    sentences = [m.group(0) for m in _SENTENCE.finditer(answer)]
    for n in cited_numbers(answer):
        source = by_n.get(n)
        if source is None:
            check.invalid.append(n)
            continue
        claims = [sentence for sentence in sentences if _cites(sentence, n)]
        claim = " ".join(claims)
        if not all(supports(source.text, c, question) for c in claims or [answer]):
            check.unsupported.append(n)
            continue
        check.citations.append(_citation(n, source, best_quote(source.text, claim or answer)))
    if not check.citations and not check.invalid and not check.unsupported:
        check.citations = attribute(answer, sources, question)
    return check


def best_quote(text: str, claim: str) -> tuple[int, int]:
    """The sentence of ``text`` sharing the most words with ``claim`` (offsets in text)."""
    return _best_sentence(text, _content_words(claim))[0]


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(text) if len(w) > 2}


def _best_sentence(text: str, wanted: set[str]) -> tuple[tuple[int, int], float]:
    """The sentence of ``text`` sharing the most of ``wanted`` (shorter ones preferred),
    and the share of ``wanted`` it holds."""
    best, best_score, best_cover = (0, min(len(text), 300)), -1.0, 0.0
    for match in _SENTENCE.finditer(text):
        words = {w.lower() for w in _WORDS.findall(match.group(0))}
        if not words:
            continue
        shared = len(words & wanted)
        score = shared / (1 + 0.02 * len(words))
        if score > best_score:
            best, best_score = (match.start(), match.end()), score
            best_cover = shared / len(wanted) if wanted else 0.0
    return best, best_cover


def _citation(n: int, source: Source, span: tuple[int, int], kind: str = "model") -> Citation:
    """A citation quoting ``span`` of the source's text, with offsets in the document."""
    quote = source.text[span[0] : span[1]].strip()
    # Offsets in the parent (excerpts are not contiguous in it), then in the document.
    at = max(source.hit.text.find(quote), 0)
    start = source.hit.start + at
    return Citation(n, source, quote, start, start + len(quote), kind=kind)


def attribute(answer: str, sources: Sequence[Source], question: str = "") -> list[Citation]:
    """For answers without [n] markers (small models often omit them): link answer
    sentences to the source sentences that state them. These are labelled ``attributed``
    so nobody mistakes them for the model's citations.

    Strict, because the page shows the result as "supports the answer": a sentence is
    checked when it claims at least three content words and is no question; one source
    sentence must hold ``ATTRIBUTION_COVER`` of its words without stop words, and of the
    words it adds to the question. Unless at least half of the checked sentences are
    supported, the answer as a whole is not, and nothing is attributed: an off-topic
    answer that shares a phrase with some source gets no "supports"."""
    given = _claim_words(question)
    found: dict[int, Citation] = {}
    checked = supported = 0
    for match in _SENTENCE.finditer(answer):
        claim = match.group(0)
        wanted = _claim_words(claim)
        if len(wanted) < _MIN_CLAIM_WORDS or claim.rstrip().endswith("?"):
            continue
        checked += 1
        news = _news(wanted, given)
        best: tuple[float, Source, tuple[int, int]] | None = None
        for source in sources:
            span, cover = _best_sentence(source.text, wanted)
            if best is None or cover > best[0]:
                best = (cover, source, span)
        if best is None or best[0] < ATTRIBUTION_COVER:
            continue
        cover, source, span = best
        stated = {w.lower() for w in _WORDS.findall(source.text[span[0] : span[1]])}
        if not news or len(news & stated) / len(news) < ATTRIBUTION_COVER:
            continue  # it only restates the question, or what it adds is not stated there
        supported += 1
        found.setdefault(source.n, _citation(source.n, source, span, kind="attributed"))
    if 2 * supported < checked:
        return []
    return list(found.values())
