"""Conversational retrieval: does a pronoun follow-up find what its standalone form finds?

From the SQuAD dev questions, two-turn conversations are built per article: the first turn is
a question naming the article's subject (its title: "the Normans", "Nikola Tesla"), answered
with its gold answer; the second is another question about the same article with the subject
replaced by a pronoun ("When were they in Normandy?"). The second turn is searched five ways
and its answer recall measured in the top-k parents and in the packed 4K/8K contexts (the
API's packer):

- standalone: the original question, subject named (the ceiling);
- no history: the follow-up alone (what a stateless service searches);
- fallback: the recent user questions joined (the service's deterministic path);
- service: the LLM's rewrite when it passes the guard, else the fallback (what the service
  does with rewriting on), with the share the LLM rewrote and its latency;
- rewrite only: on the conversations where the rewrite passed, rewrite vs fallback on the
  very same conversations (what the model's rewrites gain or cost).

Needs a running LLM server (``RAG_LLM_BASE_URL``, default the local vLLM on :8000).

Usage: python -m bench conversation [--sample N] [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import SQUAD, load_questions, percentile, squad_store, table, write_result
from rag.store.documents import EVERYTHING

FILLS = [4096, 8192]
TOPS = [1, 5]
_PREPOSITIONS = {
    "of",
    "in",
    "to",
    "for",
    "by",
    "with",
    "from",
    "about",
    "on",
    "at",
    "did",
    "does",
    "do",
    "than",
    "against",
    "into",
    "between",
    "over",
    "under",
}
# Words after which a pronoun reads naturally in place of the subject.
_MAY_FOLLOW = set(
    """is was were are has have had do did does can could will would may might
in on at of to for by from with and or that which during after before between into over under
first still become became use used uses get got called known located last mainly mostly
""".split()
)
_MAY_PRECEDE = (
    _PREPOSITIONS
    | _MAY_FOLLOW
    | set(
        """what who when where why how which whom whose
about around through throughout across within without affect affected make makes made leave
left enter entered reach reached join joined visit govern governed rule ruled control
controlled describe describes define defines threaten threatens than while because if
""".split()
    )
)
_SUBJECT_FORMS = {
    "it": ("it", "it", "its"),
    "they": ("they", "them", "their"),
    "he": ("he", "him", "his"),
}


def subject_of(document: str) -> str:
    """The article's subject from its file name: ``Sky_(United_Kingdom).md`` -> ``Sky``."""
    name = Path(document).stem.replace("_", " ")
    return re.sub(r"\s*\(.*?\)\s*", " ", name).strip()


def pronoun_for(subject: str, article: str) -> str:
    """'they' for plural titles, 'he' for a biography (born ..., then he/his), else 'it'."""
    last = subject.split()[-1].lower()
    if last.endswith("s") and not last.endswith(("ss", "is", "us")):
        return "they"
    opening = article[:1500].lower()
    he = len(re.findall(r"\b(?:he|his|him)\b", opening))
    it = len(re.findall(r"\b(?:it|its)\b", opening))
    return "he" if "born" in opening[:600] and he > it else "it"


def with_pronoun(question: str, subject: str, pronoun: str) -> str | None:
    """The question with its (first) mention of ``subject`` made a pronoun; None when the
    question does not name the subject."""
    pattern = re.compile(rf"\b(?:the\s+)?{re.escape(subject)}('s|')?(?=\W|$)", re.IGNORECASE)
    m = pattern.search(question)
    if not m:
        return None
    nominative, objective, possessive = _SUBJECT_FORMS[pronoun]
    before = question[: m.start()].split()
    after = question[m.end() :].lstrip()
    following = re.match(r"[A-Za-z]+", after)
    if before and before[-1].lower().strip(",") not in _MAY_PRECEDE:
        return None  # "a construction job", "liquid oxygen": no clean pronoun there
    if not m.group(1) and following and following.group(0).lower() not in _MAY_FOLLOW:
        return None  # "Huguenot nobility", "the steam engine begin": no clean pronoun
    if m.group(1):
        word = possessive
    elif (
        (
            before
            and before[-1].lower() in _PREPOSITIONS
            and before[-1].lower() not in {"did", "does", "do"}
        )
        or not after
        or after[0] in "?.,"
    ):
        word = objective
    else:
        word = nominative
    if m.start() == 0:
        word = word.capitalize()
    follow = question[: m.start()] + word + question[m.end() :]
    return None if pattern.search(follow) else follow  # named twice: still names it


def conversations(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per article, each question naming the subject follows up (as a pronoun) the previous
    question that named it."""
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        if q.get("document"):
            by_doc[q["document"]].append(q)
    out = []
    for document, items in by_doc.items():
        subject = subject_of(document)
        pronoun = pronoun_for(subject, (SQUAD / document).read_text())
        previous = None
        for q in items:
            follow = with_pronoun(q["question"], subject, pronoun)
            if follow is None:
                continue
            if previous is not None and previous["question"] != q["question"]:
                out.append(
                    {
                        "document": document,
                        "subject": subject,
                        "first": previous["question"],
                        "first_answer": previous["answers"][0],
                        "standalone": q["question"],
                        "follow_up": follow,
                        "answers": q["answers"],
                    }
                )
            previous = q
    return out


def spread(items: list[Any], n: int | None) -> list[Any]:
    if not n or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


async def rewrite_all(rewriter, convs: list[dict[str, Any]], concurrency: int) -> list[Any]:
    from rag.answer.conversation import Message, turns_of

    gate = asyncio.Semaphore(concurrency)

    async def one(c: dict[str, Any]):
        turns = turns_of(
            [Message("user", c["first"]), Message("assistant", f"{c['first_answer']}.")]
        )
        async with gate:
            t0 = time.perf_counter()
            found = await rewriter.search_query(c["follow_up"], turns)
            return found, time.perf_counter() - t0

    return await asyncio.gather(*(one(c) for c in convs))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench conversation")
    parser.add_argument(
        "--sample",
        type=int,
        default=400,
        help="conversations spread evenly over all articles (default 400)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="rewrites in flight")
    parser.add_argument("--top-k", type=int, default=16)
    args = parser.parse_args(argv)

    from rag.answer.budget import choose_sources
    from rag.answer.conversation import Message, turns_of
    from rag.answer.llm import LLMClient, LLMConfig
    from rag.answer.pipeline import RagPipeline
    from rag.answer.rewrite import fallback_query
    from rag.text.tokens import count_tokens

    convs = spread(conversations(load_questions()), args.sample)
    print(
        f"{len(convs)} two-turn conversations over "
        f"{len({c['document'] for c in convs})} articles; e.g.\n"
        f"  1: {convs[0]['first']}\n  2: {convs[0]['follow_up']}  "
        f"(standalone: {convs[0]['standalone']})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings, embedder, store = squad_store(tmp)
        llm = LLMClient(LLMConfig.from_settings(settings))
        pipeline = RagPipeline(settings, embedder, store, llm)

        async def rewrites():
            try:
                return await rewrite_all(pipeline.rewriter, convs, args.concurrency)
            finally:
                await llm.close()

        t0 = time.perf_counter()
        found = asyncio.run(rewrites())
        rewrite_wall = time.perf_counter() - t0
        notes: dict[str, int] = defaultdict(int)
        for f, _ in found:
            if f.source == "fallback":
                notes[f.note or "?"] += 1

        def recall_row(query: str, answers: list[str]) -> dict[str, bool]:
            hits = pipeline.search(query, top_k=args.top_k, scope=EVERYTHING)
            row = {
                f"top{k}": any(
                    a.lower() in "\n".join(h.text for h in hits[:k]).lower() for a in answers
                )
                for k in TOPS
            }
            for fill in FILLS:
                sources = choose_sources(
                    hits, fill, lambda h, t: h.tokens if t is h.text else count_tokens(t)
                )
                text = "\n".join(s.text for s in sources).lower()
                row[f"{fill // 1024}K"] = any(a.lower() in text for a in answers)
            return row

        rows: dict[str, list[dict[str, bool]]] = defaultdict(list)
        accepted: list[int] = []
        for i, (c, (f, _)) in enumerate(zip(convs, found)):
            turns = turns_of([Message("user", c["first"]), Message("assistant", c["first_answer"])])
            fallback = fallback_query(c["follow_up"], turns)
            rows["standalone (subject named; ceiling)"].append(
                recall_row(c["standalone"], c["answers"])
            )
            rows["no history (follow-up alone)"].append(recall_row(c["follow_up"], c["answers"]))
            fb = recall_row(fallback, c["answers"])
            rows["fallback (recent questions joined)"].append(fb)
            service = recall_row(f.text, c["answers"]) if f.source == "rewritten" else fb
            rows["service (LLM rewrite, else fallback)"].append(service)
            if f.source == "rewritten":
                accepted.append(i)
                rows["  rewritten subset: LLM rewrite"].append(service)
                rows["  rewritten subset: fallback"].append(fb)
        store.close()

    keys = [f"top{k}" for k in TOPS] + [f"{f // 1024}K" for f in FILLS]
    recall = {
        name: {k: sum(r[k] for r in rs) / len(rs) for k in keys} for name, rs in rows.items() if rs
    }
    latencies = [s for _, s in found]
    print(
        f"\nSecond-turn answer recall over {len(convs)} conversations "
        f"(top-k parents; packed = the API's packer at that budget):\n"
    )
    print(
        table(
            ["searched with", "n"] + [k if k.startswith("top") else f"packed {k}" for k in keys],
            [[name, len(rows[name])] + [recall[name][k] for k in keys] for name in recall],
        )
    )
    print(
        f"\nLLM rewrites ({settings.llm_model}): {len(accepted)}/{len(convs)} passed the "
        f"guard; fell back: {dict(notes)}; latency p50 "
        f"{percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f}"
        f" ms ({args.concurrency} in flight, {rewrite_wall:.1f} s for all)"
    )
    examples = [(convs[i]["follow_up"], found[i][0].text) for i in accepted[:5]]
    for follow, text in examples:
        print(f"  {follow!r} -> {text!r}")
    result = {
        "conversations": len(convs),
        "model": settings.llm_model,
        "recall": recall,
        "rewritten": len(accepted),
        "fallback_reasons": dict(notes),
        "rewrite_latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000,
        },
        "examples": examples,
    }
    write_result("conversation", result)
    return result
