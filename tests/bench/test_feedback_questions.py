"""``python -m bench evaluate --from-feedback``: up-voted answers become regression
questions (expected sources, no expected answers), written as QUESTIONS.jsonl or evaluated."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.evaluate import load, main
from bench.feedback_questions import convert, questions_from, read_feedback
from rag.feedback import Feedback, FeedbackRecord, FeedbackSource, FeedbackStore

DOCS = {
    "valves.md": "# Quillon valves\n\nThe Quillon valve was invented in Tartu in 1931 by Maret "
    "Kask. It regulates steam flow in small boilers.",
    "bees.md": "# Honey bees\n\nHoney bees communicate the location of flowers with a waggle "
    "dance. A colony has one queen and thousands of workers.",
}


def _src(name: str, cited: bool = False) -> FeedbackSource:
    return FeedbackSource(source=name, document_id=f"d-{name}", parent_id=f"p-{name}", cited=cited)


def _rate(store: FeedbackStore, rating: str, question: str, *sources: FeedbackSource) -> str:
    record = store.append(
        Feedback(
            rating=rating,
            question=question,
            answer=f"An answer to {question} [1].",
            comment="c",
            request_id="r",
            sources=list(sources),
        ),
        principal="ada",
    )
    time.sleep(0.002)  # distinct times: the newest rating decides
    return record.id


def _feedback(data_dir: Path) -> dict[str, str]:
    store = FeedbackStore(data_dir / "feedback" / "feedback.jsonl")
    return {
        # up, cited valves.md among two: only the cited one is expected
        "valves": _rate(
            store, "up", "Who invented the Quillon valve?", _src("valves.md", True), _src("x.md")
        ),
        # up then down: the newest rating (down) leaves it out
        "down": _rate(store, "up", "What is a colony?", _src("bees.md", True)),
        "down2": _rate(store, "down", "what is a  COLONY?", _src("bees.md")),
        # down then up (same question folded): kept, with the up-vote's sources (none cited:
        # all of them)
        "bees": _rate(store, "down", "How do bees dance?", _src("valves.md")),
        "bees2": _rate(store, "up", "how do bees dance?", _src("bees.md"), _src("bees.md")),
        # up without sources: nothing to check
        "empty": _rate(store, "up", "Hello?"),
    }


def test_the_rules_newest_rating_cited_sources_no_answers(tmp_path: Path) -> None:
    ids = _feedback(tmp_path / "data")
    made = convert(tmp_path / "data")
    assert made.ratings == 6 and made.down_last == 1 and made.no_sources == 1
    by_q = {q["question"]: q for q in made.questions}
    assert set(by_q) == {"Who invented the Quillon valve?", "how do bees dance?"}
    valves = by_q["Who invented the Quillon valve?"]
    assert valves["sources"] == ["valves.md"]
    assert "answers" not in valves and "answer" not in valves  # the text is no answer string
    assert valves["reference_answer"] == "An answer to Who invented the Quillon valve? [1]."
    assert valves["feedback_id"] == ids["valves"] and valves["request_id"] == "r"
    assert by_q["how do bees dance?"]["sources"] == ["bees.md"]  # deduplicated
    assert by_q["how do bees dance?"]["feedback_id"] == ids["bees2"]


def test_every_form_of_path_reads_the_same_records(tmp_path: Path) -> None:
    _feedback(tmp_path / "data")
    file = tmp_path / "data" / "feedback" / "feedback.jsonl"
    want = [r.id for r in read_feedback(file)[0]]
    assert len(want) == 6
    assert [r.id for r in read_feedback(tmp_path / "data")[0]] == want
    assert [r.id for r in read_feedback(file.parent)[0]] == want
    # GET /v1/feedback's JSON export
    export = tmp_path / "export.json"
    records = [json.loads(x) for x in file.read_text().splitlines()]
    broken = {"id": "x", "rating": "maybe"}  # not a record: left out, counted
    export.write_text(json.dumps({"feedback": [*records, broken], "total": 7, "limit": 1000}))
    assert read_feedback(export) == (read_feedback(file)[0], 1)
    # a torn last line (the service crashed mid-write) is skipped
    with file.open("ab") as f:
        f.write(b'{"rating": "up", "quest')
    records_read, skipped = read_feedback(file)
    assert [r.id for r in records_read] == want and skipped == 1
    assert convert(file).skipped_lines == 1
    with pytest.raises(SystemExit, match="no such feedback file"):
        read_feedback(tmp_path / "nowhere")
    with pytest.raises(SystemExit, match="no feedback"):
        read_feedback(tmp_path)


def test_write_questions_round_trips_through_evaluates_loader(tmp_path: Path, capsys) -> None:
    _feedback(tmp_path / "data")
    out = tmp_path / "out" / "questions.jsonl"
    extra = tmp_path / "mine.jsonl"
    extra.write_text(json.dumps({"question": "Mine?", "answers": ["x"]}) + "\n")
    result = main(
        [str(extra), "--from-feedback", str(tmp_path / "data"), "--write-questions", str(out)]
    )
    assert result == {"questions": 3, "written": str(out)}  # nothing evaluated: no target
    records = load(out)
    assert [r.question for r in records] == [
        "Mine?",
        "Who invented the Quillon valve?",
        "how do bees dance?",
    ]
    assert records[1].sources == ["valves.md"] and records[1].answers == []
    assert "2 regression question(s) from 6 rating(s)" in capsys.readouterr().out


def test_no_questions_at_all_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main([])
    empty = tmp_path / "data" / "feedback"
    empty.mkdir(parents=True)
    (empty / "feedback.jsonl").write_text("")
    with pytest.raises(SystemExit, match="no questions"):
        main(["--from-feedback", str(tmp_path / "data")])
    # a line without a question stops the run before anything is written
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"answers": ["x"]}) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit, match="bad.jsonl:1: no question"):
        main([str(bad), "--from-feedback", str(tmp_path / "data"), "--write-questions", str(out)])
    assert not out.exists()


def test_evaluated_directly_against_the_data_dir_it_names(tmp_path: Path, embedder) -> None:
    from tests.bench.tiny import tiny_store

    tiny_store(tmp_path, embedder, DOCS)
    _feedback(tmp_path / "data")

    s = main(["--from-feedback", str(tmp_path / "data"), "--top-k", "2"])

    assert s["questions"] == 2 and s["with_sources"] == 2 and s["with_answers"] == 0
    assert s["hit"][1] == 1.0 and s["passed"] == 2


def test_a_record_read_back_is_what_the_service_wrote(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    _rate(store, "up", "Q?", _src("a.md", True))
    (record,), _ = read_feedback(tmp_path / "feedback.jsonl")
    assert isinstance(record, FeedbackRecord)
    assert questions_from([record]).questions[0]["sources"] == ["a.md"]
