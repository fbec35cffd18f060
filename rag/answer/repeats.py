"""Where a small model starts saying its answer again, the answer ends.

SmolLM2-135M repeats its answer sentence even at temperature 0 ("X. X." or "X. A shorter
X. The start of X"), and a repetition penalty is no cure: vLLM's counts the prompt's tokens
too, so it keeps the model from copying its sources (measured on 8 questions with known
answers: 4 right without, 1 at 1.2; at 1.05 it still repeats). ``RepeatCut`` instead ends
the answer at the first sentence that adds nothing: every word of it is in one earlier
sentence of the answer.

Streaming: text is released as soon as it cannot be such a repeat (its words so far are not
all in one earlier sentence), so an answer that does not repeat streams as it comes, and the
start of a repeat is held back until it either adds a word (released) or ends (cut). The
released text of a stream is the same as of the whole answer fed at once, so a streamed and
a non-streamed answer are the same text.
"""

from __future__ import annotations

import re

#: A sentence ends at . ! or ? before white space, or at a line break.
_END = re.compile(r"[.!?]+(?=\s)|\n")
_WORD = re.compile(r"\w+")
#: A sentence shorter than this never counts as a repeat ("Yes.", a list number).
_MIN_WORDS = 3


class RepeatCut:
    """Feed the answer's text as it streams; ``feed`` and ``flush`` return what may be
    shown; ``cut`` turns true at the first repeated sentence (feed nothing after it)."""

    def __init__(self) -> None:
        self._earlier: list[frozenset[str]] = []
        self._sentence = ""  # the current sentence so far
        self._released = 0  # how much of it was returned
        self.cut = False

    def feed(self, text: str) -> str:
        if self.cut:
            return ""
        out: list[str] = []
        self._sentence += text
        while (end := _END.search(self._sentence)) is not None:
            whole, self._sentence = self._sentence[: end.end()], self._sentence[end.end() :]
            if self._finish(whole, out):
                return "".join(out)
        if not self._may_repeat(self._sentence):
            out.append(self._sentence[self._released :])
            self._released = len(self._sentence)
        return "".join(out)

    def flush(self) -> str:
        """The rest at the end of the answer (an unfinished repeat is dropped)."""
        out: list[str] = []
        if not self.cut and self._sentence:
            whole, self._sentence = self._sentence, ""
            self._finish(whole, out)
        return "".join(out)

    def _finish(self, whole: str, out: list[str]) -> bool:
        """A whole sentence: released (and remembered) unless it repeats; True when cut."""
        words = _words(whole)
        if len(words) >= _MIN_WORDS and any(words <= seen for seen in self._earlier):
            self.cut, self._sentence = True, ""
            return True
        out.append(whole[self._released :])
        self._released = 0
        if words:
            self._earlier.append(frozenset(words))
        return False

    def _may_repeat(self, partial: str) -> bool:
        """Whether ``partial`` may still become a repeat: its whole words all in one earlier
        sentence, and its last (perhaps unfinished) word the start of one there."""
        if not self._earlier or self._released:
            return False  # nothing to repeat, or already shown (it added a word)
        words = [w.lower() for w in _WORD.findall(partial)]
        if not words:
            return True  # white space between sentences: held with what follows
        last = words.pop() if partial[-1:].isalnum() or partial[-1:] == "_" else None
        for seen in self._earlier:
            if set(words) <= seen and (last is None or any(w.startswith(last) for w in seen)):
                return True
        return False


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}
