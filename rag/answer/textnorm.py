"""Text as it reads, look-alikes folded: the view in which markers and blankness are judged.

A document (or a client) can write a prompt marker so that it reads the same but matches no
plain pattern: ``</source>`` with a zero-width space or a soft hyphen inside, fullwidth
``＜/source＞``, Cyrillic letters in ``sоurce``. And a question of only zero-width spaces is
blank although ``str.strip`` keeps it. ``fold`` gives the view in which both are judged:

* each character in its NFKC form (fullwidth and mathematical letters, compatibility
  forms: ``＜`` is ``<``, ``𝐬`` is ``s``);
* invisible characters dropped: format characters (Unicode category Cf: zero-width spaces
  and joiners, soft hyphens, bidirectional controls, tag characters), the other
  default-ignorable code points (variation selectors, the combining grapheme joiner, Hangul
  fillers) and the blank Braille pattern;
* the look-alikes of the prompt's delimiter characters (``<``, ``>``, ``/``, ``|``) and of the
  letters of ``source`` that NFKC keeps apart, as those characters.

The folded view is for matching only: callers escape the original text where a match lies
(``origins`` maps each folded character back to the one it came from), so what
a document says reaches the model unchanged elsewhere.
"""

from __future__ import annotations

import functools
import re
import unicodedata

#: Default-ignorable code points outside category Cf, and U+2800 (blank Braille).
_EXTRA_INVISIBLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2065, 0x2065),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)

#: Look-alikes NFKC leaves as they are, of the characters the prompt's markers are made of.
_CONFUSABLES = {
    **dict.fromkeys("‹❮❬⟨〈˂ᐸ⧼", "<"),
    **dict.fromkeys("›❯❭⟩〉˃ᐳ⧽", ">"),
    **dict.fromkeys("∕⁄⧸╱", "/"),
    **dict.fromkeys("∣ǀ│❘ⵏ", "|"),
    **dict.fromkeys("ѕЅꜱ", "s"),
    **dict.fromkeys("оОοΟᴏ", "o"),
    **dict.fromkeys("ᴜս", "u"),
    **dict.fromkeys("ʀг", "r"),
    **dict.fromkeys("сСϲᴄ", "c"),
    **dict.fromkeys("еЕεΕᴇ", "e"),
}


@functools.cache
def _invisible() -> frozenset[int]:
    """Every invisible code point (built once, at the first text that needs it)."""
    points = {i for i in range(0x110000) if unicodedata.category(chr(i)) == "Cf"}
    for low, high in _EXTRA_INVISIBLE:
        points.update(range(low, high + 1))
    return frozenset(points)


@functools.cache
def _special_chars() -> re.Pattern[str]:
    """Characters that fold to something else than themselves besides NFKC's (a class of
    ranges: a class of single characters this large is searched member by member)."""
    points = sorted(_invisible() | {ord(c) for c in _CONFUSABLES})
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    body = "".join(
        re.escape(chr(low)) + ("-" + re.escape(chr(high)) if high > low else "")
        for low, high in ranges
    )
    return re.compile(f"[{body}]")


def _fold_char(c: str) -> str:
    """One character in the folded view ('' when invisible)."""
    invisible = _invisible()
    if ord(c) in invisible:
        return ""
    return "".join(
        _CONFUSABLES.get(n, n) for n in unicodedata.normalize("NFKC", c) if ord(n) not in invisible
    )


def _unchanged(text: str) -> bool:
    """Whether folding leaves ``text`` as it is (checked at C speed)."""
    if text.isascii():
        return True
    return unicodedata.is_normalized("NFKC", text) and not _special_chars().search(text)


class _FoldTable(dict[int, str]):
    """``str.translate``'s table: each code point's folded form, computed once (at C
    speed after that)."""

    def __missing__(self, point: int) -> str:
        folded = self[point] = _fold_char(chr(point))
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """``text`` in the folded view (see the module notes); ``text`` itself when unchanged."""
    if _unchanged(text):
        return text
    return text.translate(_TABLE)


def origins(text: str) -> list[int]:
    """For each character of ``fold(text)``, the index in ``text`` of the one it came from."""
    origin: list[int] = []
    for i, c in enumerate(text):
        origin.extend([i] * len(_TABLE[ord(c)]))
    return origin


def has_visible_text(text: str) -> bool:
    """False for text of only spaces, control, format and other invisible characters."""
    return any(not unicodedata.category(c).startswith(("C", "Z")) for c in fold(text))
