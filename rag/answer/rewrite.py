"""Follow-up questions become standalone search queries.

"And who commissioned it?" finds nothing on its own. With history, the LLM rewrites the
follow-up from the recent turns (its own small token budget and a short timeout); when it is
down, slow, switched off or answers junk, a deterministic fallback searches with the recent
user questions joined to the new one. Either way the original question is what gets answered,
in the context of the conversation; the rewrite only drives retrieval. When the fallback is
searched, ``SearchQuery.note`` says why: a ``RewriteNote``, or the LLM failure's code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from rag.answer.conversation import Turn
from rag.answer.llm import LLMClient, LLMError, LLMFailure
from rag.answer.prompting import escape_source_text
from rag.settings import ConversationSettings

REWRITE_PROMPT = (
    "You turn the last question of a conversation into one standalone search query. Replace "
    "pronouns and references such as 'it', 'he', 'they', 'that' with the names they refer to "
    "in the conversation. Reply with the search query only, on one line, without quotes, "
    "labels or explanations."
)
_LABEL = re.compile(
    r"^\s*(?:standalone\s+|last\s+|rewritten\s+)?(?:search\s+)?"
    r"(?:query|question)\s*:\s*",
    re.IGNORECASE,
)
_FALLBACK_CHARS = 600


class RewriteNote(StrEnum):
    """Why the fallback was searched (besides an LLM failure, noted by its ``LLMFailure``);
    the values are what the API reports in ``search_query_note``."""

    off = "rewriting is off"
    unusable = "unusable rewrite"


@dataclass(frozen=True)
class SearchQuery:
    """What retrieval searched for, and where it came from."""

    text: str
    source: Literal["question", "rewritten", "fallback"]
    note: RewriteNote | LLMFailure | None = None  # why the fallback was used
    #: the second hop's searches (``rag.answer.decompose.HopPlan``), who planned them and,
    #: when the deterministic ones stood in for the LLM's, why
    follow_ups: tuple[str, ...] = ()
    follow_ups_by: Literal["llm", "deterministic"] | None = None
    follow_ups_note: str | None = None


def fallback_query(question: str, turns: Sequence[Turn], recent: int = 2) -> str:
    """The last user questions and the new one, joined, trimmed from the oldest side."""
    parts = [t.question.strip() for t in turns[-recent:] if t.question.strip()]
    text = " ".join(parts + [question.strip()])
    return text[-_FALLBACK_CHARS:].lstrip()


_WORD = re.compile(r"[^\W_]+")
_PRONOUNS = frozenset("it its they them their theirs he him his she her hers".split())
_PLAIN = frozenset(
    """what when where which while whom whose with would could should about after
again also another because been before being between both does doing down during each from
further have having here into just more most other over same some such than that then there
these they this those through under until very were will your tell show give know said says
and the for are but not you all any can had her was one our out has him his how its may new
now old see two way who did get got let put too use""".split()
)


def content_words(text: str) -> set[str]:
    """Stems (first five letters) of the words that carry meaning."""
    return {w.lower()[:5] for w in _WORD.findall(text) if len(w) > 2 and w.lower() not in _PLAIN}


def clean_rewrite(text: str, question: str) -> str | None:
    """The rewrite if it looks like a search query for this question, else None: empty,
    markup, an essay, no longer about the question (a small model often answers, or repeats
    the previous answer, instead of rewriting; that must not drive retrieval), or adding
    nothing to it (the question back, pronouns unresolved)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip("\"'`“”‘’").strip()
    if not (3 <= len(line) <= max(300, 3 * len(question))):
        return None
    if "<" in line or not any(c.isalnum() for c in line):
        return None
    asked, said = content_words(question), content_words(line)
    if asked and len(asked & said) * 2 < len(asked):
        return None  # lost at least half of what the question asks about
    if not said - asked:
        return None  # names nothing from the conversation: the fallback searches better
    left = _PRONOUNS & {w.lower() for w in _WORD.findall(question)}
    if left & {w.lower() for w in _WORD.findall(line)}:
        return None  # a pronoun of the follow-up is still unresolved
    return line


class QueryRewriter:
    def __init__(self, settings: ConversationSettings, llm: LLMClient | None) -> None:
        self.settings, self.llm = settings, llm

    async def search_query(
        self,
        question: str,
        turns: Sequence[Turn],
        specials: Sequence[str] = (),
        request_id: str | None = None,
    ) -> SearchQuery:
        if not turns:
            return SearchQuery(question, "question")
        s = self.settings
        if not s.rewrite_queries or self.llm is None:
            return SearchQuery(fallback_query(question, turns), "fallback", RewriteNote.off)
        lines = []
        for turn in turns[-s.rewrite_turns :]:
            for m in turn.messages:
                content = " ".join(m.content.split())[:400]
                lines.append(f"{m.role.capitalize()}: {escape_source_text(content, specials)}")
        messages = [
            {"role": "system", "content": REWRITE_PROMPT},
            {
                "role": "user",
                "content": "Conversation:\n"
                + "\n".join(lines)
                + f"\n\nLast question: {escape_source_text(question.strip(), specials)}"
                "\nStandalone search query:",
            },
        ]
        try:
            text = await self.llm.complete_chat(
                messages,
                max_tokens=s.rewrite_max_tokens,
                timeout=s.rewrite_timeout_s,
                request_id=request_id,
            )
        except LLMError as exc:
            return SearchQuery(fallback_query(question, turns), "fallback", exc.code)
        rewritten = clean_rewrite(text, question)
        if rewritten is None:
            return SearchQuery(fallback_query(question, turns), "fallback", RewriteNote.unusable)
        return SearchQuery(rewritten, "rewritten")
