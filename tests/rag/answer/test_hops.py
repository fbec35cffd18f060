"""The follow-up hop (rag.answer.hops) on a tiny real corpus: real BGE, real Qdrant Edge.

The bridge document ("Juhan Tamm turned Velvet Harbour into an opera...") shares no word
with the question; it is reachable only through the novel's name, which the first hop's
best document (Maret Kask's) states.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.access.scope import ReadScope
from rag.answer.hops import FOLLOW_UP_PASSAGES, follow_ups, fuse, names, seed_terms
from rag.documents import Hit, MatchedPassage

QUESTION = "Which composer adapted Maret Kask's novel?"
BRIDGE = "bridge.md"
DOCS = {
    "kask.md": "# Maret Kask\n\nMaret Kask was an Estonian writer. Her best-known book, the "
    "novel Velvet Harbour, was written in 1952 and is set in a fishing village.",
    BRIDGE: "# Tamm\n\nJuhan Tamm turned Velvet Harbour into an opera; it premiered in "
    "Tallinn in 1961 and is still performed each summer.",
    # each shares a word with the question (so hybrid ranks it above the bridge), no more
    "composer.md": "# Film music\n\nA composer of film music works to tight deadlines.",
    "adapted.md": "# Desert plants\n\nDesert plants adapted to drought store water in "
    "their leaves.",
    "letters.md": "# Letters\n\nA composer wrote letters to his sister every week.",
}


def test_bridge_shares_no_word_with_the_question() -> None:
    import re

    question = {w.lower() for w in re.findall(r"\w+", QUESTION)}
    bridge = {w.lower() for w in re.findall(r"\w+", DOCS[BRIDGE])}
    assert not question & bridge


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):
    from ingest.indexer import Indexer
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore

    base = tmp_path_factory.mktemp("hops")
    docs = base / "docs"
    (docs / "secret").mkdir(parents=True)
    for name, text in DOCS.items():
        (docs / ("secret" if name == BRIDGE else "") / name).write_text(text)
    # staff read everything but the bridge document; the "secret" group reads it too
    (docs / ".rag-access.toml").write_text('groups = ["staff"]\n')
    (docs / "secret" / ".rag-access.toml").write_text('groups = ["secret"]\n')
    settings = Settings(data_dir=base / "data")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    summary = Indexer(settings, embedder, store).run([docs])
    assert not summary.failed, summary.failed
    yield settings, store
    store.close()


def retriever(settings, embedder, store, **retrieval):
    from rag.answer.retrieval import Retriever

    return Retriever(settings.retrieval.model_copy(update=retrieval), embedder, store)


def names_of(hits: list[Hit]) -> list[str]:
    return [Path(h.source).name for h in hits]


def search(r, top_k: int = 3, filters=None) -> list[Hit]:
    from rag.settings import RetrievalMode

    return r.retrieve(QUESTION, top_k, RetrievalMode.hybrid, filters)


def test_bridge_found_only_with_the_hop(corpus, embedder) -> None:
    settings, store = corpus
    without = search(retriever(settings, embedder, store, retrieval_hops=1))
    assert BRIDGE not in names_of(without)
    with_hop = search(retriever(settings, embedder, store, retrieval_hops=2, hop_budget_ms=60_000))
    assert BRIDGE in names_of(with_hop), names_of(with_hop)
    assert len(with_hop) == 3  # inside the same top_k
    bridge = next(h for h in with_hop if Path(h.source).name == BRIDGE)
    assert bridge.hop == 2 and "Velvet Harbour" in bridge.found_by
    assert all(h.hop == 1 and not h.found_by for h in with_hop if h is not bridge)
    assert len({h.parent_id for h in with_hop}) == len(with_hop)  # one hit per parent


def test_the_follow_up_ranks_fewer_passages_per_parent(corpus, embedder, monkeypatch) -> None:
    """The first search groups ``passages_per_parent`` passages per parent, the follow-up
    ``FOLLOW_UP_PASSAGES`` (a smaller window, not widened), never more than the setting;
    the bridge is found either way."""
    settings, store = corpus
    asked: list[tuple[int | None, bool]] = []
    real = store.search.search

    def recording(*args, **kwargs):
        asked.append((kwargs.get("group_size"), kwargs.get("widen", True)))
        return real(*args, **kwargs)

    monkeypatch.setattr(store.search, "search", recording)
    assert FOLLOW_UP_PASSAGES < settings.retrieval.passages_per_parent
    for per_parent, follow_up in ((16, FOLLOW_UP_PASSAGES), (2, 2)):
        asked.clear()
        r = retriever(
            settings,
            embedder,
            store,
            retrieval_hops=2,
            hop_budget_ms=60_000,
            passages_per_parent=per_parent,
        )
        assert BRIDGE in names_of(search(r))
        # None: the setting's; the follow-up's window is not widened
        assert asked == [(None, True), (follow_up, False)], per_parent


def ranked(hits: list[Hit]) -> list[tuple[float, str]]:
    """Names by score (parents of equal fused score may come in either order)."""
    return sorted((-round(h.score, 6), Path(h.source).name) for h in hits)


def test_budget_zero_and_off_switch_give_the_first_hop(corpus, embedder) -> None:
    settings, store = corpus
    # top 4: the bridge is fifth without the hop (and second with it, as above)
    first = ranked(search(retriever(settings, embedder, store, retrieval_hops=1), top_k=4))
    for options in (
        {"retrieval_hops": 2, "hop_budget_ms": 0},
        {"retrieval_hops": 2, "hop_queries": 0},
        {"retrieval_hops": 1, "hop_budget_ms": 60_000},
    ):
        hits = search(retriever(settings, embedder, store, **options), top_k=4)
        assert ranked(hits) == first and BRIDGE not in names_of(hits), options
        assert all(h.hop == 1 for h in hits)


def test_follow_ups_stay_inside_the_scope(corpus, embedder) -> None:
    """A scope that cannot read the bridge document: no hop ever returns it (the same
    search, in a scope that can, does)."""
    from rag.store.search import SearchFilters

    settings, store = corpus
    r = retriever(settings, embedder, store, retrieval_hops=2, hop_budget_ms=60_000)
    staff = ReadScope(tokens=frozenset({"group:staff"}))
    secret = ReadScope(tokens=frozenset({"group:staff", "group:secret"}))
    for top_k in (3, 10):
        hits = search(r, top_k=top_k, filters=SearchFilters.within(None, staff))
        assert hits and BRIDGE not in names_of(hits)
    assert BRIDGE in names_of(search(r, top_k=3, filters=SearchFilters.within(None, secret)))
    nobody = ReadScope(tokens=frozenset({"user:nobody"}))
    assert search(r, top_k=3, filters=SearchFilters.within(None, nobody)) == []


def _hit(pid: str, title: str = "", text: str = "") -> Hit:
    return Hit(
        pid,
        pid,
        f"/d/{pid}.md",
        title,
        "md",
        [],
        "",
        text,
        0,
        len(text),
        10,
        1.0,
        0,
        [MatchedPassage(0, len(text), 1.0)] if text else [],
    )


def test_seed_terms_and_queries_are_deterministic() -> None:
    assert names("The novel Velvet Harbour was set in Republic of Estonia. It sold.") == [
        "Velvet Harbour",
        "Republic of Estonia",
    ]
    seed = _hit("a", "Maret Kask", DOCS["kask.md"].split("\n\n")[1])
    assert seed_terms(QUESTION, seed) == ["Estonian", "Velvet Harbour"]
    planned = follow_ups(QUESTION, [seed, seed, _hit("b", "Maret Kask")], 3)
    assert [p.query for p in planned] == [f"{QUESTION} Estonian Velvet Harbour"]


def test_seed_terms_skip_dates_and_repeats_and_stop_at_max_names() -> None:
    from rag.answer.hops import MAX_NAMES

    text = (
        "Matt Toeaina (born May 2, 1984) is an American football player. Matt Toeaina "
        "played for the Chicago Bears in October (Chicago) and for Oregon on Saturday. "
        + " ".join(f"Zed{i} visited Qorv{i}." for i in range(30))
    )
    terms = seed_terms("Which team signed the player?", _hit("a", "Matt Toeaina", text))
    # each once; "Chicago" adds no word "Chicago Bears" did not
    assert terms[:4] == ["Matt Toeaina", "American", "Chicago Bears", "Oregon"]
    assert not {"May", "October", "Saturday"} & set(terms)  # dates, not names
    assert len(terms) == MAX_NAMES + 1  # the title and MAX_NAMES names
    # a title is a name even when it is a month's ("August", a film)
    assert seed_terms("Who directed it?", _hit("b", "August", "August is a film."))[0] == "August"


def test_fuse_keeps_the_first_hop_order_and_dedupes() -> None:
    first = [_hit(p) for p in "abcd"]
    (plan,) = follow_ups("q", [_hit("a", "Alpha Title")], 1)
    # the follow-up of a: a (listed), x (new: placed right after a), b
    fused = fuse(first, [(plan, [_hit("a"), _hit("x"), _hit("b")])], limit=4)
    assert [h.parent_id for h in fused] == ["a", "x", "b", "c"]
    assert fused[1].hop == 2 and fused[1].found_by == plan.query == "q Alpha Title"
    assert all(h.hop == 1 and not h.found_by for h in fused if h.parent_id != "x")
    # a follow-up that finds nothing new changes nothing
    assert fuse(first, [(plan, [_hit("a"), _hit("b")])], limit=4) == first


def test_a_follow_ups_next_finds_go_below_the_fifth_place() -> None:
    first = [_hit(p) for p in "abcdefghij"]
    (plan,) = follow_ups("q", [_hit("a", "Alpha Title")], 1)
    found = [_hit("x"), _hit("c"), _hit("y"), _hit("z"), _hit("w")]
    fused = fuse(first, [(plan, found)], limit=10)
    # x right after its seed; y and z (not in the first hop) from the sixth place on; c
    # keeps its own place (a first-hop parent is never an extra); w (a fourth find) is out
    assert [h.parent_id for h in fused] == list("axbcdyzefg")
    assert [h.hop for h in fused] == [1, 2, 1, 1, 1, 2, 2, 1, 1, 1]
    assert fused[5].found_by == fused[6].found_by == plan.query
    assert [h.parent_id for h in fuse(first, [(plan, found)], 10, extra=0)] == list("axbcdefghi")
    # a shorter list is the start of a longer one: top 5 has no extras, top 7 both
    for limit in (4, 5, 7):
        assert fuse(first, [(plan, found)], limit=limit) == fused[:limit]


def test_a_follow_ups_scores_never_outrank_the_parent_it_displaces() -> None:
    """The packer orders excerpts by score across parents: a hop-2 parent is scored no
    higher than the first-hop parent whose place it takes (its scores scaled down)."""
    from dataclasses import replace

    first = [_hit(p, text="x") for p in "ab"]
    first = [replace(h, passages=[MatchedPassage(0, 1, s)]) for h, s in zip(first, (0.9, 0.5))]
    new = replace(_hit("x", text="x"), score=0.8, passages=[MatchedPassage(0, 1, 0.8)])
    (plan,) = follow_ups("q", [replace(first[0], title="Alpha")], 1)
    fused = fuse(first, [(plan, [new])], limit=3)
    assert [h.parent_id for h in fused] == ["a", "x", "b"]
    # x takes b's place: its best passage 0.8 scaled to b's 0.5 (factor 0.625)
    assert fused[1].passages[0].score == pytest.approx(0.5)
    assert fused[1].score == pytest.approx(0.8 * 0.625)
    assert fused[0] is first[0] and fused[2] is first[1]  # the first hop's own hits
