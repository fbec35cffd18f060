"""Regression questions from answer feedback (``rag.feedback``): what ``python -m bench
evaluate --from-feedback PATH`` reads.

PATH is a feedback file (``feedback.jsonl``, or ``GET /v1/feedback?format=jsonl``'s export,
or the JSON export's ``{"feedback": [...]}``), a data dir (its ``feedback/feedback.jsonl``)
or the feedback folder itself. Unreadable lines are skipped, as the service skips them.

The rules (one question per distinct question text, compared case- and space-folded):
- the newest rating of a question decides: a question whose newest rating is down is left
  out (its answer was judged wrong after all), else its newest up-vote is used;
- expected ``sources`` are that answer's cited sources (cited or attributed when it was
  rated), or all its sources when it cited none; an up-vote without sources (nothing
  matched) checks nothing and is left out;
- no expected ``answers``: an answer is a paragraph, never a string the packed context or
  a new answer would contain, so evaluate's ``contains`` checks would fail on wording
  alone. The up-voted text is kept as ``reference_answer`` (with ``feedback_id``,
  ``request_id``, ``comment``, ``rated_at``) for whoever reads or edits the file; evaluate
  ignores those fields. Add short ``answers`` by hand to check answers too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rag.feedback import FeedbackRecord, FeedbackStore


@dataclass
class Converted:
    """The questions made, and how many ratings were left out and why."""

    questions: list[dict[str, Any]] = field(default_factory=list)
    ratings: int = 0
    down_last: int = 0  # questions whose newest rating is down
    no_sources: int = 0  # up-votes naming no source
    skipped_lines: int = 0


def feedback_file(path: Path) -> Path:
    """The feedback file PATH names (see the module notes)."""
    if path.is_dir():
        for candidate in (path / "feedback" / "feedback.jsonl", path / "feedback.jsonl"):
            if candidate.is_file():
                return candidate
        raise SystemExit(f"{path}: no feedback/feedback.jsonl or feedback.jsonl in it")
    if not path.is_file():
        raise SystemExit(f"{path}: no such feedback file or data dir")
    return path


def read_feedback(path: Path) -> tuple[list[FeedbackRecord], int]:
    """Every whole record of PATH, oldest first; and how many lines were unreadable."""
    source = feedback_file(path)
    try:
        whole = json.loads(source.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("feedback"), list):  # the JSON export
        records, bad = [], 0
        for item in whole["feedback"]:
            try:
                records.append(FeedbackRecord.model_validate_json(json.dumps(item)))
            except ValidationError:
                bad += 1
        return sorted(records, key=lambda r: r.ts), bad
    store = FeedbackStore(source)
    records = list(store.records())
    return sorted(records, key=lambda r: r.ts), store.skipped


def _key(question: str) -> str:
    return " ".join(question.casefold().split())


def questions_from(records: list[FeedbackRecord]) -> Converted:
    """Regression questions from ``records`` (oldest first), by the module's rules."""
    out = Converted(ratings=len(records))
    newest: dict[str, FeedbackRecord] = {}
    newest_up: dict[str, FeedbackRecord] = {}
    for record in sorted(records, key=lambda r: r.ts):
        key = _key(record.question)
        newest[key] = record
        if record.rating == "up":
            newest_up[key] = record
    for key, last in newest.items():
        if last.rating == "down":
            out.down_last += 1
            continue
        up = newest_up[key]
        chosen = [s for s in up.sources if s.cited] or up.sources
        sources = list(dict.fromkeys(s.source for s in chosen))
        if not sources:
            out.no_sources += 1
            continue
        out.questions.append(
            {
                "question": up.question,
                "sources": sources,
                "reference_answer": up.answer,
                "feedback_id": up.id,
                "request_id": up.request_id,
                "comment": up.comment,
                "rated_at": up.time,
            }
        )
    return out


def convert(path: Path) -> Converted:
    """Read PATH and make its questions."""
    records, skipped = read_feedback(path)
    converted = questions_from(records)
    converted.skipped_lines = skipped
    return converted


def write_questions(questions: list[dict[str, Any]], out: Path) -> None:
    """QUESTIONS.jsonl: one question a line, the format ``bench.evaluate.load`` reads."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions))
