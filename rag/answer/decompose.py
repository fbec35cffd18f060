"""The LLM's follow-up searches for the second hop (optional; the deterministic hop otherwise).

``rag.answer.hops`` seeds the second hop with names the first hop's parents hold and the
question lacks. A model able to read (production: Llama 3.1) can do better on questions
whose bridge is not a name ("the director of the film that won..."): with
``RAG_HOP_DECOMPOSE``, it reads the question and the first hop's best parents (titles and
their best passage, escaped like sources) and proposes at most ``hop_queries`` follow-up
searches, within ``hop_decompose_max_tokens`` tokens and ``hop_decompose_timeout_s``
seconds. Like the query rewriter, it never fails the answer: an LLM error or timeout, or a
proposal with no usable query (empty, markup, the question back, an essay, ``NONE``), falls
back to the deterministic follow-ups, and ``HopPlan.note`` says why.

What a proposal can do: it only chooses what is searched, inside the caller's access scope
and filters (the searches are the first one's, ``Retriever.follow``), so a passage that tries
to steer the proposal can at most pull in other documents the reader may already see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from rag.answer.hops import FollowUp, follow_ups
from rag.answer.llm import LLMClient, LLMError, LLMFailure
from rag.answer.prompting import escape_source_text
from rag.answer.rewrite import content_words
from rag.documents import Hit
from rag.settings import RetrievalSettings

DECOMPOSE_PROMPT = (
    "You plan the searches that answer a question which may need facts from two documents. "
    "You see the question and the passages a first search found. If answering needs a fact "
    "these passages point to but do not state (about a person, work, place or event they "
    "name), write the search queries that would find it, one per line, at most {n}. Reply "
    "with the queries only: no numbering, quotes or explanations. If the passages already "
    "hold everything needed, reply NONE."
)
#: First-hop parents shown to the model, and characters of each one's best passage.
SHOWN_PARENTS = 3
SHOWN_CHARS = 400
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+\s*[.):]|\(\d+\))\s*")
_LABEL = re.compile(r"^\s*(?:follow[- ]?up\s+)?(?:search\s+)?(?:query|queries)\s*\d*\s*:\s*", re.I)
_MAX_WORDS = 24


class PlanNote(StrEnum):
    """Why the deterministic follow-ups were searched (besides an LLM failure's code)."""

    off = "decomposition is off"
    unusable = "unusable proposal"


@dataclass(frozen=True)
class HopPlan:
    """The second hop's searches and who proposed them."""

    follow_ups: tuple[FollowUp, ...]
    source: Literal["llm", "deterministic"]
    note: PlanNote | LLMFailure | None = None


def clean_proposals(text: str, question: str, found: str, limit: int) -> list[str]:
    """The usable queries of a proposal, in order, each once, at most ``limit``: one line
    each, without bullets, labels or quotes; 3-300 characters and at most 24 words (longer
    is an answer, not a query); no markup; naming something the question does not (the
    question back adds nothing the first hop did not search), and sharing a word with the
    question or with what the model was shown as ``found`` (about neither, it follows up
    nothing: a small model's greeting or its memory). ``NONE`` is no query."""
    asked = content_words(question)
    related = asked | content_words(found)
    out: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = _LABEL.sub("", _BULLET.sub("", raw)).strip().strip("\"'`“”‘’").strip()
        if line.upper().rstrip(".") == "NONE" or not 3 <= len(line) <= 300:
            continue
        if "<" in line or len(line.split()) > _MAX_WORDS or not any(c.isalnum() for c in line):
            continue
        said = content_words(line)
        if not said - asked or not said & related or line.lower() in seen:
            continue
        seen.add(line.lower())
        out.append(line)
        if len(out) >= limit:
            break
    return out


class HopDecomposer:
    """Plans the second hop: the LLM's proposal when on and usable, else ``follow_ups``."""

    def __init__(self, settings: RetrievalSettings, llm: LLMClient | None) -> None:
        self.settings, self.llm = settings, llm

    @property
    def on(self) -> bool:
        s = self.settings
        return s.hop_decompose and self.llm is not None and s.retrieval_hops > 1

    async def plan(
        self,
        question: str,
        first: list[Hit],
        specials: Sequence[str] = (),
        request_id: str | None = None,
    ) -> HopPlan:
        count = self.settings.hop_queries

        def fallback(note: PlanNote | LLMFailure) -> HopPlan:  # only when it stands in
            return HopPlan(tuple(follow_ups(question, first, count)), "deterministic", note)

        if not self.on or self.llm is None or not first or count < 1:
            return fallback(PlanNote.off)
        shown = self.shown(first, specials)
        messages = self.messages(question, shown, specials)
        try:
            text = await self.llm.complete_chat(
                messages,
                max_tokens=self.settings.hop_decompose_max_tokens,
                timeout=self.settings.hop_decompose_timeout_s,
                request_id=request_id,
            )
        except LLMError as exc:
            return fallback(exc.code)
        queries = clean_proposals(text, question, shown, min(count, len(first)))
        if not queries:
            return fallback(PlanNote.unusable)
        # Each proposal is placed after a first-hop parent (``hops.fuse``), best first.
        return HopPlan(tuple(FollowUp(first[i], q) for i, q in enumerate(queries)), "llm")

    @staticmethod
    def shown(first: list[Hit], specials: Sequence[str] = ()) -> str:
        """The first hop's best parents as the model sees them: title and best passage,
        escaped like sources."""
        lines = []
        for n, hit in enumerate(first[:SHOWN_PARENTS], 1):
            best = hit.passage_text(hit.passages[0]) if hit.passages else hit.text
            title = escape_source_text(" ".join(hit.title.split())[:200], specials)
            text = escape_source_text(" ".join(best.split())[:SHOWN_CHARS], specials)
            lines.append(f"[{n}] {title}: {text}")
        return "\n".join(lines)

    def messages(
        self, question: str, shown: str, specials: Sequence[str] = ()
    ) -> list[dict[str, str]]:
        system = DECOMPOSE_PROMPT.format(n=self.settings.hop_queries)
        user = (
            f"Question: {escape_source_text(question.strip(), specials)}\n\n"
            f"Found by the first search:\n{shown}\n\nSearch queries:"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
