"""Iterative (multi-hop) retrieval: a second hop seeded by the first, deterministic, no LLM.

A question that needs two documents ("who set Nietzsche's philosophical novel to music?")
often shares no word with the second ("bridge") one: it is reachable only through what the
first says (the novel's title). So, after the first search, each of the ``hop_queries`` best
first-hop parents seeds one follow-up query: the question plus that parent's title and the
capitalised names (entities) of its best matched passages that the question lacks. Each
follow-up is searched like the first (same mode, filters and access scope: the caller's
``search`` function is the only way in), over a smaller window that is not widened
(``FOLLOW_UP_PASSAGES``), and fused by rank: the first hop's order is kept,
each seed followed by the best parent its follow-up found that is not listed yet
(deduplicated by parent, cut to the same ``limit``). A parent found only by a follow-up
says so (``Hit.hop`` 2, ``Hit.found_by`` the follow-up query). One follow-up (from the
best parent) is the measured best on HotpotQA-dev: each one pushes the first hop's later
parents down a rank.

Bounds: ``retrieval_hops`` (1: off), ``hop_queries`` (follow-up searches at most) and
``hop_budget_ms``: counted from the start of retrieval (the question's embedding); a
follow-up not started by then is skipped (0: first-hop results only).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.documents import Hit
from rag.settings import RetrievalSettings

#: Names taken from one seed parent (the first ones, in reading order). Measured on
#: HotpotQA-dev (BENCHMARKS.md, 2e): 3 names 0.934 both-gold@5, 6: 0.946, 10: 0.960,
#: 15: 0.962, 25: 0.962; the bridge is often a later name of the seed's passage.
MAX_NAMES = 15
#: Matched passages of a seed parent read for names (the best ones).
SEED_PASSAGES = 2

# A run of capitalised words ("Thus Spoke Zarathustra", "Richard Strauss"), joined by a few
# lower-case particles inside names ("Republic of Ireland", "Ludwig van Beethoven").
_NAME = re.compile(
    r"[A-Z][\w'’\-]*(?:\s+(?:(?:of|the|de|van|von|da|del|la|and|&)\s+)?[A-Z][\w'’\-]*)*"
)
_WORD = re.compile(r"\w+")
#: Capitalised only because they start a sentence, or too common to name anything.
_COMMON = frozenset(
    """a an the this that these those it its he she they his her their there here in on at
    of for from by with as to and or but if when while after before during since until
    is was were are be been who whom whose which what where why how also however although
    though yet so then thus one two three first second new many most some other such""".split()
)
#: Where a follow-up's next finds go (0-based: the sixth place; measured with top 10 on
#: HotpotQA-dev, BENCHMARKS.md 2e: both-gold@10 0.972 -> 0.982, @5 unchanged).
EXTRA_RANK = 5
#: Passages per parent a follow-up's search ranks (the first search: the setting's 16). A
#: follow-up lends at most 1 + 2 parents (``fuse``), each placed by rank and scored like the
#: parent it displaces, so it needs their best passages, not 16 each: at top_k 16 its window
#: is 100 passages instead of 256 (measured at 1M passages: the follow-up's Edge query 8.3 ->
#: 6.0 ms; HotpotQA-dev both-gold@2/5/10 0.832-0.840 / 0.958-0.960 / 0.982-0.984 either
#: way), and it is not widened when that window holds fewer than top_k parents (a narrow
#: scope's would be, at the cost of a count and a query four times as deep). The price: a
#: parent only a follow-up found offers the excerpt packer (and a reranker) up to 4 matched
#: passages, not 16; measured by parent recall and SQuAD's packed recall (unchanged), not by
#: a packed measure on multi-hop questions.
FOLLOW_UP_PASSAGES = 4  # (never more than the setting)
#: Capitalised, but dates, not names: a month or a weekday adds nothing to a follow-up.
_CALENDAR = frozenset(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday""".split()
)


@dataclass(frozen=True)
class FollowUp:
    seed: Hit  # the first-hop parent it came from
    query: str  # what is searched: the question plus what the seed adds


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def names(text: str) -> list[str]:
    """Capitalised names in ``text``, in reading order, each once (case-insensitive)."""
    out: list[str] = []
    seen: set[str] = set()
    for match in _NAME.finditer(text):
        words = match.group(0).split()
        while words and words[0].lower() in _COMMON:  # "The" starting a sentence
            words = words[1:]
        name = " ".join(words).rstrip(".")
        if not name or name.lower() in seen or name.lower() in _COMMON:
            continue
        seen.add(name.lower())
        out.append(name)
    return out


def seed_terms(question: str, hit: Hit, max_names: int = MAX_NAMES) -> list[str]:
    """What ``hit`` says that ``question`` lacks: its title, then the names of its best
    matched passages (its text's start when none matched), each adding a word that neither
    the question nor an earlier term holds (a month or weekday is no such word)."""
    asked = _words(question)
    passages = [hit.passage_text(p) for p in hit.passages[:SEED_PASSAGES]] or [hit.text[:1500]]
    out: list[str] = []
    taken: set[str] = set()
    for i, term in enumerate([hit.title, *(n for text in passages for n in names(text))]):
        words = _words(term)
        dates = _CALENDAR if i else frozenset()  # a title "August" names something
        if not term or not words - asked - _COMMON - dates - taken:
            continue
        taken |= words
        out.append(term)
        if len(out) > max_names:  # the title and max_names names
            break
    return out


def follow_ups(question: str, first: list[Hit], count: int) -> list[FollowUp]:
    """One follow-up query for each of the ``count`` best first-hop parents that adds
    something to the question (deterministic: same hits, same queries)."""
    out: list[FollowUp] = []
    seen: set[str] = set()
    for hit in first:
        if len(out) >= count:
            break
        terms = seed_terms(question, hit)
        if not terms:
            continue
        query = f"{question.strip()} {' '.join(terms)}"
        if query in seen:
            continue
        seen.add(query)
        out.append(FollowUp(hit, query))
    return out


def fuse(
    first: list[Hit], hops: list[tuple[FollowUp, list[Hit]]], limit: int, extra: int = 2
) -> list[Hit]:
    """The first hop's order, each seed followed by the best parent its follow-up found
    that is not listed yet (``hop`` 2, ``found_by`` the follow-up query); then, from rank
    ``EXTRA_RANK`` + 1 (the sixth place) down, each follow-up's next ``extra`` parents that
    neither hop listed: the first five places stay the seeded order, the places below make
    room for a bridge the follow-up ranked second or third. A fixed rank, so that a shorter
    list is the start of a longer one (top_k 5 lists the first five of top_k 10: no extras).
    One hit per parent, the best ``limit``. A rank fusion that keeps the first hop first: RRF over the hop lists measured
    worse at the top (BENCHMARKS.md, "multi-hop": parents every follow-up repeats, because
    each holds the question, crowd out the one bridge a single follow-up finds), better
    deep down, which the ``extra`` places take from it."""
    found = {follow_up.seed.parent_id: (follow_up, hits) for follow_up, hits in hops}
    out: list[Hit] = []
    listed: set[str] = set()
    by_id = {h.parent_id: h for h in first}
    later: list[tuple[FollowUp, Hit]] = []
    for hit in first:
        if hit.parent_id not in listed:
            listed.add(hit.parent_id)
            out.append(hit)
        follow_up, hits = found.get(hit.parent_id, (None, []))
        new = next((h for h in hits if h.parent_id not in listed), None)
        if follow_up is None or new is None:
            continue
        listed.add(new.parent_id)
        if new.parent_id in by_id:  # promoted: the first hop's own hit (its scores)
            out.append(by_id[new.parent_id])
        else:  # scored like the first-hop parent whose place it takes
            displaced = first[min(len(out), len(first) - 1)]
            out.append(rescaled(replace(new, hop=2, found_by=follow_up.query), displaced))
        others = [h for h in hits if h.parent_id not in listed and h.parent_id not in by_id]
        later.extend((follow_up, h) for h in others[:extra])
    place = EXTRA_RANK
    for follow_up, new in later:
        if new.parent_id in listed or place >= limit:
            continue
        listed.add(new.parent_id)
        displaced = out[min(place, len(out) - 1)]
        out.insert(place, rescaled(replace(new, hop=2, found_by=follow_up.query), displaced))
        place += 1
    return out[:limit]


def rescaled(hit: Hit, like: Hit) -> Hit:
    """``hit`` with its scores scaled down so that its best passage scores no higher than
    ``like``'s: the packer orders excerpts by score across parents, and a follow-up's scores
    come from another query (measured: unscaled, a follow-up's parent took SQuAD's 4K packed
    context from first-hop parents)."""
    best = max((p.score for p in hit.passages), default=0.0)
    ceiling = max((p.score for p in like.passages), default=0.0)
    if best <= 0 or ceiling <= 0 or best <= ceiling:
        return hit
    factor = ceiling / best
    return replace(
        hit,
        score=hit.score * factor,
        passages=[replace(p, score=p.score * factor) for p in hit.passages],
    )


class HopRetrieval:
    """The follow-up hop (see the module notes) over a ``search(query, limit)`` function
    that the caller binds to its own mode, filters and access scope."""

    def __init__(self, settings: RetrievalSettings) -> None:
        self.settings = settings

    @property
    def on(self) -> bool:
        return self.settings.retrieval_hops > 1 and self.settings.hop_queries > 0

    def extend(
        self,
        question: str,
        first: list[Hit],
        limit: int,
        search: Callable[[str, int], list[Hit]],
        started: float,
        planned: Sequence[FollowUp] | None = None,
    ) -> list[Hit]:
        """``first`` (``limit`` parents) fused with the follow-ups' results. ``search``
        takes a query and a limit (the caller binds it to the first search's mode, filters
        and scope); ``started``: the ``time.monotonic()`` retrieval began (the budget's
        origin: the question's embedding and the first search count against it; after an
        LLM's proposal, ``rag.answer.decompose``, which has its own timeout, the time the
        proposal came back). ``planned``: the follow-ups to search (the LLM's), else the
        deterministic ones."""
        if not self.on or not first:
            return first
        deadline = started + self.settings.hop_budget_ms / 1000
        if planned is None:
            planned = follow_ups(question, first, self.settings.hop_queries)
        if not planned or time.monotonic() >= deadline:
            return first
        results: list[tuple[FollowUp, list[Hit]]] = []
        for follow_up in planned:
            if time.monotonic() >= deadline:
                break  # not started within the budget: skipped
            results.append((follow_up, search(follow_up.query, limit)))
        return fuse(first, results, limit) if results else first
