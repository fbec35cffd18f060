"""Evaluation on the operator's own questions: retrieval, packing and (optionally) answers.

Usage: python -m bench evaluate QUESTIONS.jsonl [--data-dir DIR | --api URL --key KEY]
       [--top-k 10] [--answer] [--html report.html] [--worst 10]
       python -m bench evaluate --from-feedback FILE_OR_DATA_DIR [--write-questions OUT]
       [QUESTIONS.jsonl] [--data-dir DIR | --api URL ...]

Each line of QUESTIONS.jsonl: ``{"question": ..., "answers": [...], "sources": [...]}``
(``answers`` and ``sources`` optional; sources are file names or paths: an expected source
matches a retrieved document whose name equals it or ends with ``/`` + it). Against a data
dir (the service's store, opened read-only as the service would: every search in
``EVERYTHING``'s scope) or a running service (``/v1/search``, ``/v1/query``).

Metrics (over the questions that give what each needs):
- hit@k (some expected source in the top k), recall@k (the share of expected sources in the
  top k), MRR (1 / rank of the first parent of an expected source), nDCG@10 (binary: each
  expected source counts once, at its first parent's rank);
- answer in packed context: an expected answer (case-insensitive) in the text packed for
  the LLM (locally the service's packer; with --api the sources ``/v1/query`` returns);
- with --answer: answer match (contains; token F1, SQuAD's) and citation precision (the
  cited sources that are expected sources, or hold an expected answer when none given);
- latency p50/p95 (search; answer with --answer).
A failed question names its first failing stage: ``not retrieved`` (an expected source not
in the top k; without expected sources, no expected answer in the retrieved text: an answer
such as "yes" is in no text, so with sources given the sources decide), ``retrieved but not
packed`` (an expected answer in the retrieved text, not in the packed), ``packed but not
answered``. Markdown goes to stdout; --html writes a self-contained report
(``bench.report``: inline SVG, no external assets).

``--from-feedback PATH`` adds regression questions made from the answers users rated up
(``bench.feedback_questions``: a feedback file or a data dir; the question, its up-voted
answer's cited sources as expected ``sources``, no expected ``answers``: the answer text is
kept as ``reference_answer`` only). ``--write-questions OUT`` writes them (and any
QUESTIONS.jsonl given) as a QUESTIONS.jsonl; it then evaluates only when ``--data-dir`` or
``--api`` is given. Otherwise they are evaluated at once, against ``--data-dir``, ``--api``,
or the data dir PATH names (else ``RAG_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bench.common import percentile, table

KS = [1, 3, 5, 10]
NOT_RETRIEVED = "not retrieved"
NOT_PACKED = "retrieved but not packed"
NOT_ANSWERED = "packed but not answered"


# --- matching ------------------------------------------------------------------------------
def source_matches(expected: str, name: str) -> bool:
    """An expected source (a file name or a path) names the retrieved document ``name``."""
    want = str(PurePosixPath(expected.strip().lstrip("./"))).lower()
    have = str(PurePosixPath(name)).lower()
    return have == want or have.endswith("/" + want) or want.endswith("/" + have)


def contains(text: str, answers: Sequence[str]) -> bool:
    low = text.lower()
    return any(a.strip() and a.strip().lower() in low for a in answers)


def _normalise(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 of ``prediction`` against any expected answer (SQuAD's)."""
    best = 0.0
    got = _normalise(prediction)
    for answer in answers:
        want = _normalise(answer)
        common = sum((Counter(got) & Counter(want)).values())
        if not common:
            continue
        precision, recall = common / len(got), common / len(want)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# --- one question --------------------------------------------------------------------------
@dataclass
class Retrieved:
    name: str  # the document's display name
    text: str  # the parent's text (or snippet)
    hop: int = 1


@dataclass
class Record:
    question: str
    answers: list[str]
    sources: list[str]
    retrieved: list[Retrieved] = field(default_factory=list)
    packed: str | None = None  # the text packed for the LLM (None: not measured)
    answer: str | None = None  # the LLM's answer (None: not asked)
    cited: list[Retrieved] = field(default_factory=list)  # the sources the answer cites
    search_s: float = 0.0
    answer_s: float | None = None
    error: str | None = None

    # ranks (1-based) at which each expected source first appears; None: not in the list
    def source_ranks(self) -> list[int | None]:
        out: list[int | None] = []
        for expected in self.sources:
            rank = next(
                (i + 1 for i, r in enumerate(self.retrieved) if source_matches(expected, r.name)),
                None,
            )
            out.append(rank)
        return out

    def hit_at(self, k: int) -> bool:
        return any(r is not None and r <= k for r in self.source_ranks())

    def recall_at(self, k: int) -> float:
        ranks = self.source_ranks()
        return sum(r is not None and r <= k for r in ranks) / len(ranks)

    def reciprocal_rank(self) -> float:
        found = [r for r in self.source_ranks() if r is not None]
        return 1 / min(found) if found else 0.0

    def ndcg(self, k: int = 10) -> float:
        dcg = sum(1 / math.log2(r + 1) for r in self.source_ranks() if r is not None and r <= k)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(self.sources), k)))
        return dcg / ideal

    def answer_retrieved(self) -> bool:
        return contains("\n".join(r.text for r in self.retrieved), self.answers)

    def answer_packed(self) -> bool | None:
        return (
            None if self.packed is None or not self.answers else contains(self.packed, self.answers)
        )

    def answer_contains(self) -> bool | None:
        return (
            None if self.answer is None or not self.answers else contains(self.answer, self.answers)
        )

    def answer_f1(self) -> float | None:
        return (
            None if self.answer is None or not self.answers else token_f1(self.answer, self.answers)
        )

    def citation_precision(self) -> float | None:
        """Cited sources that are expected ones (or hold an expected answer)."""
        if self.answer is None or not self.cited or not (self.sources or self.answers):
            return None
        good = [
            any(source_matches(e, c.name) for e in self.sources)
            if self.sources
            else contains(c.text, self.answers)
            for c in self.cited
        ]
        return sum(good) / len(good)

    def failure(self) -> str | None:
        """The first stage that failed (see the module notes); None: nothing failed."""
        if self.error:
            return f"error: {self.error}"
        if self.sources and self.recall_at(len(self.retrieved)) < 1:
            return NOT_RETRIEVED
        if self.answers and not self.sources and not self.answer_retrieved():
            return NOT_RETRIEVED
        if self.answer_packed() is False and self.answer_retrieved():
            return NOT_PACKED
        if self.answer_contains() is False:
            return NOT_ANSWERED
        return None

    def badness(self) -> tuple[int, float, float]:
        """Sort key, worst first: a failure's stage, then the rank and answer scores."""
        stage = {NOT_RETRIEVED: 0, NOT_PACKED: 1, NOT_ANSWERED: 2, None: 4}
        reason = self.failure()
        f1 = self.answer_f1()
        return (
            stage.get(reason, 0 if reason else 4),
            self.reciprocal_rank() if self.sources else 1.0,
            f1 if f1 is not None else 1.0,
        )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(records: list[Record], top_k: int) -> dict[str, Any]:
    """Every metric of the run (None where no question gives what it needs)."""
    with_sources = [r for r in records if r.sources and not r.error]
    with_answers = [r for r in records if r.answers and not r.error]
    ks = [k for k in KS if k <= top_k] or [top_k]
    packed = [p for r in with_answers if (p := r.answer_packed()) is not None]
    matched = [m for r in with_answers if (m := r.answer_contains()) is not None]
    f1 = [f for r in with_answers if (f := r.answer_f1()) is not None]
    precision = [c for r in records if (c := r.citation_precision()) is not None]
    answer_times = [r.answer_s for r in records if r.answer_s is not None]
    failures = Counter(r.failure() for r in records)
    return {
        "questions": len(records),
        "with_sources": len(with_sources),
        "with_answers": len(with_answers),
        "top_k": top_k,
        "hit": {k: _mean([float(r.hit_at(k)) for r in with_sources]) for k in ks},
        "recall": {k: _mean([r.recall_at(k) for r in with_sources]) for k in ks},
        "recall_curve": [
            _mean([r.recall_at(k) for r in with_sources]) for k in range(1, top_k + 1)
        ],
        "mrr": _mean([r.reciprocal_rank() for r in with_sources]),
        "ndcg@10": _mean([r.ndcg(10) for r in with_sources]),
        "answer_in_retrieved": _mean([float(r.answer_retrieved()) for r in with_answers]),
        "answer_in_packed": _mean([float(p) for p in packed]),
        "answer_contains": _mean([float(m) for m in matched]),
        "answer_f1": _mean(f1),
        "citation_precision": _mean(precision),
        "search_ms": {
            "p50": percentile([r.search_s for r in records], 50) * 1000,
            "p95": percentile([r.search_s for r in records], 95) * 1000,
        },
        "answer_ms": {
            "p50": percentile(answer_times, 50) * 1000,
            "p95": percentile(answer_times, 95) * 1000,
        }
        if answer_times
        else None,
        "failures": {str(k): v for k, v in failures.items() if k is not None},
        "passed": failures.get(None, 0),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(summary: dict[str, Any], records: list[Record], worst: int) -> str:
    s = summary
    rows: list[list[Any]] = []
    for k, v in s["hit"].items():
        rows.append([f"hit@{k}", _fmt(v)])
    for k, v in s["recall"].items():
        rows.append([f"recall@{k}", _fmt(v)])
    rows += [
        ["MRR", _fmt(s["mrr"])],
        ["nDCG@10", _fmt(s["ndcg@10"])],
        ["answer in retrieved text", _fmt(s["answer_in_retrieved"])],
        ["answer in packed context", _fmt(s["answer_in_packed"])],
        ["answer match (contains)", _fmt(s["answer_contains"])],
        ["answer token F1", _fmt(s["answer_f1"])],
        ["citation precision", _fmt(s["citation_precision"])],
        ["search ms p50 / p95", f"{s['search_ms']['p50']:.1f} / {s['search_ms']['p95']:.1f}"],
    ]
    if s["answer_ms"]:
        rows.append(
            ["answer ms p50 / p95", f"{s['answer_ms']['p50']:.0f} / {s['answer_ms']['p95']:.0f}"]
        )
    out = [
        f"# Evaluation: {s['questions']} questions ({s['with_sources']} with sources, "
        f"{s['with_answers']} with answers), top {s['top_k']}",
        "",
        table(["metric", "value"], rows),
        "",
        f"Passed: {s['passed']} of {s['questions']}; failed: "
        + (", ".join(f"{n} {why}" for why, n in s["failures"].items()) or "none"),
    ]
    bad = [r for r in sorted(records, key=lambda r: r.badness()) if r.failure()][:worst]
    if bad:
        out += ["", f"## Worst {len(bad)} questions", ""]
        out.append(
            table(
                ["question", "why", "expected", "retrieved (top 3)"],
                [
                    [
                        _cell(r.question),
                        r.failure(),
                        _cell("; ".join(r.sources + r.answers)),
                        _cell("; ".join(x.name for x in r.retrieved[:3])),
                    ]
                    for r in bad
                ],
            )
        )
    return "\n".join(out)


def _cell(text: str, n: int = 80) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


# --- running the questions -----------------------------------------------------------------
def load(path: Path) -> list[Record]:
    return [
        record_of(json.loads(line), f"{path}:{i + 1}")
        for i, line in enumerate(path.read_text().splitlines())
        if line.strip()
    ]


def record_of(row: dict[str, Any], where: str) -> Record:
    """One question of the file (other fields, such as ``reference_answer``, are ignored)."""
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        raise SystemExit(f"{where}: no question")
    answers = row.get("answers") or ([row["answer"]] if row.get("answer") else [])
    sources = row.get("sources") or row.get("gold_files") or []
    return Record(row["question"], list(answers), list(sources))


def run_local(records: list[Record], data_dir: Path, top_k: int, answer: bool) -> None:
    """Against a store on disk: the service's pipeline (its settings, env included)."""
    from rag.answer.events import AnswerRequest
    from rag.answer.llm import LLMClient, LLMConfig
    from rag.answer.pipeline import RagPipeline
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import load_settings
    from rag.store.documents import EVERYTHING
    from rag.store.qdrant_store import QdrantStore

    settings = load_settings(data_dir=data_dir)
    embedder = SentenceTransformerEmbedder(settings)
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig.from_settings(settings)) if answer else None
    pipeline = RagPipeline(settings, embedder, store, llm)
    try:
        pipeline.search("warm up", 1, scope=EVERYTHING)
        for r in records:
            t0 = time.perf_counter()
            hits = pipeline.search(r.question, top_k, scope=EVERYTHING)
            r.search_s = time.perf_counter() - t0
            r.retrieved = [Retrieved(h.display_name, h.text, h.hop) for h in hits]
            if hits:
                prepared = asyncio.run(
                    pipeline.packer.pack(
                        r.question, hits, max_tokens=settings.llm.default_max_tokens
                    )
                )
                r.packed = "\n\n".join(s.text for s in prepared.sources)
            else:
                r.packed = ""
            if answer:
                t0 = time.perf_counter()
                final = asyncio.run(
                    _final(pipeline, AnswerRequest(r.question, scope=EVERYTHING, top_k=top_k))
                )
                r.answer_s = time.perf_counter() - t0
                if final is None:
                    r.error = "the LLM failed"
                    continue
                r.answer = final.answer
                r.cited = _unique(
                    Retrieved(c.source.hit.display_name, c.source.text)
                    for c in final.check.citations
                )
    finally:
        store.close()


async def _final(pipeline: Any, request: Any) -> Any:
    from rag.answer.events import FinalEvent

    final = None
    async for event in pipeline.answer(request):
        if isinstance(event, FinalEvent):
            final = event
    return final


def _unique(items: Any) -> list[Retrieved]:
    out: list[Retrieved] = []
    for item in items:
        if all(o.name != item.name or o.text != item.text for o in out):
            out.append(item)
    return out


def run_api(records: list[Record], url: str, key: str | None, top_k: int, answer: bool) -> None:
    """Against a running service: /v1/search for ranks, /v1/query for the packed sources
    (max_tokens 1 unless --answer: only the sources are wanted)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600) as client:
        for r in records:
            t0 = time.perf_counter()
            response = client.post(
                "/v1/search",
                json={"query": r.question, "top_k": top_k, "include": ["parent_text"]},
            )
            r.search_s = time.perf_counter() - t0
            if response.status_code != 200:
                r.error = f"/v1/search {response.status_code}"
                continue
            r.retrieved = [
                Retrieved(x["source"], x.get("text") or "", x.get("hop", 1))
                for x in response.json()["results"]
            ]
            if not (r.answers or answer):
                continue
            body: dict[str, Any] = {"question": r.question, "top_k": top_k}
            if not answer:
                body["max_tokens"] = 1
            t0 = time.perf_counter()
            response = client.post("/v1/query", json=body)
            if response.status_code != 200:
                r.error = f"/v1/query {response.status_code}"
                continue
            data = response.json()
            r.packed = "\n\n".join(s["text"] for s in data["sources"])
            if answer:
                r.answer_s = time.perf_counter() - t0
                r.answer = data["answer"]
                by_n = {s["n"]: s for s in data["sources"]}
                r.cited = _unique(
                    Retrieved(by_n[c["n"]]["source"], by_n[c["n"]]["text"])
                    for c in data["citations"]
                    if c["n"] in by_n
                )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench evaluate")
    parser.add_argument(
        "questions", type=Path, nargs="?", help="JSONL: question, answers?, sources?"
    )
    parser.add_argument(
        "--from-feedback",
        type=Path,
        default=None,
        metavar="FILE_OR_DATA_DIR",
        help="also the up-voted answers' questions (feedback.jsonl, or a data dir)",
    )
    parser.add_argument(
        "--write-questions",
        type=Path,
        default=None,
        metavar="OUT",
        help="write the questions as QUESTIONS.jsonl (evaluate only with --data-dir/--api)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data-dir", type=Path, default=None, help="the store (RAG_DATA_DIR)")
    where.add_argument("--api", default=None, help="a running service's base URL")
    parser.add_argument("--key", default=None, help="API key (with --api)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--answer", action="store_true", help="also ask the LLM")
    parser.add_argument("--html", type=Path, default=None, help="write an HTML report here")
    parser.add_argument("--worst", type=int, default=10, help="worst questions listed")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = parser.parse_args(argv)
    if args.questions is None and args.from_feedback is None:
        parser.error("give QUESTIONS.jsonl, --from-feedback PATH, or both")

    rows: list[tuple[dict[str, Any], str]] = []
    if args.questions is not None:
        lines = enumerate(args.questions.read_text().splitlines())
        rows += [(json.loads(x), f"{args.questions}:{i + 1}") for i, x in lines if x.strip()]
    if args.from_feedback is not None:
        from bench.feedback_questions import convert

        made = convert(args.from_feedback)
        print(
            f"{len(made.questions)} regression question(s) from {made.ratings} rating(s) in "
            f"{args.from_feedback} ({made.down_last} rated down last, {made.no_sources} "
            f"up-voted without sources, {made.skipped_lines} unreadable line(s) left out)"
        )
        rows += [(q, f"{args.from_feedback}: {q['feedback_id']}") for q in made.questions]
    records = [record_of(row, where) for row, where in rows]  # each names a question
    if args.write_questions is not None:
        from bench.feedback_questions import write_questions

        write_questions([row for row, _ in rows], args.write_questions)
        print(f"wrote {len(rows)} question(s) to {args.write_questions}")
        if not (args.data_dir or args.api):
            return {"questions": len(rows), "written": str(args.write_questions)}
    if not records:
        raise SystemExit("no questions to evaluate")
    if args.api:
        run_api(records, args.api, args.key, args.top_k, args.answer)
    else:
        from rag.settings import load_settings

        data_dir = args.data_dir or _data_dir_of(args.from_feedback) or load_settings().data_dir
        run_local(records, data_dir, args.top_k, args.answer)
    summary = summarise(records, args.top_k)
    print(markdown(summary, records, args.worst))
    if args.html:
        from bench.report import html_report

        title = (args.questions or args.from_feedback).name
        args.html.write_text(html_report(summary, records, title=str(title)))
        print(f"\nwrote {args.html}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _data_dir_of(path: Path | None) -> Path | None:
    """The data dir ``--from-feedback`` named (one holding ``feedback/feedback.jsonl``)."""
    if path is not None and (path / "feedback" / "feedback.jsonl").is_file():
        return path
    return None


if __name__ == "__main__":
    main()
