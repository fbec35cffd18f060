"""Citations: [n] markers mapped to sources, checked against what the sources state, and
attributed by overlap when the model wrote none."""

from rag.answer.budget import Source
from rag.answer.citations import cited_numbers, parse_citations
from tests.conftest import DOCS
from tests.rag.answer.test_prompting import hit


def test_cited_numbers_forms():
    assert cited_numbers("A [1]. B [2, 3]. C [3][4]; D [ 5 ].") == [1, 2, 3, 4, 5]


def test_citations_map_to_sources_and_invalid_numbers_are_reported():
    text = "Setup. The valve was invented in Tartu in 1931. It was cheap."
    sources = [Source(hit(text, start=100), 0, text, False, n=1)]
    check = parse_citations("It was invented in Tartu [1]. Also [7].", sources)
    citations, invalid = check.citations, check.invalid
    assert invalid == [7]
    assert [c.n for c in citations] == [1]
    assert citations[0].quote == "The valve was invented in Tartu in 1931."
    assert (
        text[citations[0].quote_start - 100 : citations[0].quote_end - 100].strip()
        == citations[0].quote
    )


def test_answer_without_markers_is_attributed_by_overlap_and_labelled():
    text = "Hi all. The Zorblax reactor was built in Oslo, Norway, at the Hovinbyen site."
    other = "Kestrel 4.2 adds offline mode."
    sources = [
        Source(hit(other, "d2"), 0, other, False, n=1),
        Source(hit(text, "d1", start=50), 1, text, False, n=2),
    ]
    check = parse_citations("The Zorblax reactor was built in Oslo, Norway.", sources)
    citations, invalid = check.citations, check.invalid
    assert invalid == [] and [(c.n, c.kind) for c in citations] == [(2, "attributed")]
    assert "Oslo" in citations[0].quote


def test_unsupported_answer_gets_no_attribution():
    text = "The Zorblax reactor was built in Oslo."
    sources = [Source(hit(text), 0, text, False, n=1)]
    check = parse_citations("The 1998 World Cup was won by France.", sources)
    assert (check.citations, check.invalid, check.unsupported) == ([], [], [])


def test_a_citation_whose_source_does_not_state_the_sentence_is_dropped():
    """The small model echoed a prompt example ("The office opens at 9 am [2]") as a fact,
    with a citation attached: a citation stands only when its source states the sentence."""
    reactor = "The Zorblax reactor was built in Oslo, Norway, in 1987."
    notes = "Kestrel 4.2 adds offline mode and faster sync."
    sources = [
        Source(hit(reactor, "d1"), 0, reactor, False, n=1),
        Source(hit(notes, "d2"), 1, notes, False, n=2),
    ]
    check = parse_citations(
        "The reactor was built in Oslo [1]. The office opens at 9 am every weekday morning [2].",
        sources,
    )
    assert [c.n for c in check.citations] == [1]
    assert check.unsupported == [2] and check.invalid == []


def test_claims_for_1_do_not_take_sentences_citing_12():
    """The claim of [1] is the sentences citing 1, not those citing 12 (a prefix match)."""
    one = "Alpha valves were patented in Riga."
    sources = [
        Source(hit(one, f"d{i}"), i, one if i == 1 else f"Filler text number {i}.", False, n=i)
        for i in range(1, 13)
    ]
    twelve = sources[11]
    twelve.text = "Beta pumps were designed in Tallinn."
    check = parse_citations(
        "Alpha valves were patented in Riga [1]. Beta pumps were designed in Tallinn [12].", sources
    )
    assert sorted(c.n for c in check.citations) == [1, 12] and check.unsupported == []
    by_n = {c.n: c for c in check.citations}
    assert "Riga" in by_n[1].quote and "Tallinn" in by_n[12].quote


NORMANS = (DOCS / "Normans.md").read_text()


def test_an_off_topic_answer_gets_no_support_from_shared_stop_words():
    """The 135M model's answer (real output) shares only "the Normans did not" with the
    source: stop words and the question's own words are no evidence."""
    sources = [Source(hit(NORMANS), 0, NORMANS, False, n=1)]
    check = parse_citations(
        "The Normans did not do anything in Italy.",
        sources,
        "What did the Normans do in Italy?",
    )
    assert (check.citations, check.unsupported) == ([], [])


def test_an_answer_restating_the_question_is_not_supported():
    text = "The Zorblax reactor was built in Oslo, Norway, at the Hovinbyen test site."
    sources = [Source(hit(text), 0, text, False, n=1)]
    question = "Where was the Zorblax reactor built?"
    assert parse_citations("The Zorblax reactor was built.", sources, question).citations == []
    check = parse_citations("The Zorblax reactor was built in Oslo, Norway.", sources, question)
    assert [(c.n, c.kind) for c in check.citations] == [(1, "attributed")]
    # A model citation must state what it adds to the question too.
    unsupported = parse_citations("The Zorblax reactor was built in Paris [1].", sources, question)
    assert unsupported.unsupported == [1] and unsupported.citations == []


def test_a_rambling_answer_with_one_matching_phrase_is_unsupported():
    """Real output for "How do I install packages in R?" over the R FAQ: the sources state
    none of it but a heading it echoed (a question, which states nothing)."""
    faq = (
        "5.1 Which add-on packages exist for R? 5.3 How can add-on packages be used? "
        "To find out which additional packages are available on your system, type library() "
        "at the R prompt. Packages are installed with install.packages()."
    )
    sources = [Source(hit(faq), 0, faq, False, n=1)]
    answer = (
        "How can R itself actually work without any external dependencies other than the "
        "ones listed below?\n\n5.3.1 How can add-on packages be used? \n\nThis question was "
        "asked about what happens after installation into the environment variable before "
        "being executed directly via command line arguments. It's also related to the fact "
        "that some systems may require their users to manually set up environments variables."
    )
    assert parse_citations(answer, sources, "How do I install packages in R?").citations == []
