"""The feedback file: appended whole and durable, read back after a restart, a torn last
line (a crash mid-write) skipped and never fatal, bounds refused before anything is written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.feedback import Feedback, FeedbackRecord, FeedbackSource, FeedbackStore, feedback_store
from rag.feedback.store import ANSWER_MAX, COMMENT_MAX, SOURCES_MAX
from rag.settings import Settings


def _feedback(rating: str = "up", question: str = "Who invented the Quillon valve?", **kw):
    kw.setdefault("answer", "Maret Kask invented it [1].")
    kw.setdefault(
        "sources",
        [FeedbackSource(source="valves.pdf", document_id="d1", parent_id="p1", cited=True)],
    )
    return Feedback(rating=rating, question=question, request_id="req-1", **kw)


def test_append_then_read_typed_records_newest_last(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback" / "feedback.jsonl")
    first = store.append(_feedback("up", comment="spot on"), principal="ada")
    time.sleep(0.01)  # times are kept to the millisecond
    second = store.append(_feedback("down", question="Where is Tartu?"), principal="hana")
    records, total = store.read()
    assert total == 2
    assert [r.id for r in records] == [first.id, second.id]
    assert isinstance(records[0], FeedbackRecord)
    assert records[0].rating == "up" and records[0].comment == "spot on"
    assert records[0].principal == "ada" and records[0].request_id == "req-1"
    assert records[0].sources[0] == FeedbackSource(
        source="valves.pdf", document_id="d1", parent_id="p1", cited=True
    )
    assert first.id != second.id and first.ts <= second.ts
    # filters: rating, since (inclusive), limit keeps the newest
    assert [r.id for r in store.read(rating="down")[0]] == [second.id]
    assert [r.id for r in store.read(since=second.ts)[0]] == [second.id]
    latest, total = store.read(limit=1)
    assert [r.id for r in latest] == [second.id] and total == 2
    assert store.read(limit=0) == ([], 2)


def test_a_new_store_on_the_same_dir_reads_what_an_old_one_wrote(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.feedback.feedback_path == tmp_path / "data" / "feedback" / "feedback.jsonl"
    written = FeedbackStore.from_settings(settings.feedback).append(_feedback(), principal="ada")
    again = FeedbackStore.from_settings(Settings(data_dir=tmp_path / "data").feedback)
    assert [r.id for r in again.read()[0]] == [written.id]
    assert feedback_store(settings.feedback) is feedback_store(settings.feedback)
    # one whole JSON object a line, the texts as given
    line = settings.feedback.feedback_path.read_text().splitlines()[0]
    assert json.loads(line)["question"] == "Who invented the Quillon valve?"


def test_a_torn_last_line_is_skipped_and_the_next_append_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    store = FeedbackStore(path)
    kept = store.append(_feedback())
    whole = (store.append(_feedback("down")).model_dump_json() + "\n").encode()
    # a crash mid-write: the last record torn, without its newline
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(whole)] + whole[: len(whole) // 2])
    records, total = store.read()
    assert [r.id for r in records] == [kept.id] and total == 1
    assert store.skipped == 1
    # the next rating is not glued onto the torn bytes
    after = store.append(_feedback("up", question="After the crash?"))
    assert [r.id for r in store.read()[0]] == [kept.id, after.id]
    assert FeedbackStore(path).read()[1] == 2


def test_foreign_and_broken_lines_never_break_reading(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(b'not json\n{"rating": "up"}\n[1, 2]\n\xff\xfe\n\n')
    store = FeedbackStore(path)
    assert store.read() == ([], 0)
    assert store.skipped == 4
    store.append(_feedback())
    assert store.read()[1] == 1


def test_a_missing_file_reads_empty(tmp_path: Path) -> None:
    assert FeedbackStore(tmp_path / "none" / "feedback.jsonl").read() == ([], 0)


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("comment", "x" * (COMMENT_MAX + 1), str(COMMENT_MAX)),
        ("answer", "x" * (ANSWER_MAX + 1), str(ANSWER_MAX)),
        ("sources", [{"source": f"f{i}.txt"} for i in range(SOURCES_MAX + 1)], str(SOURCES_MAX)),
        ("rating", "meh", "'up' or 'down'"),
        ("question", " \u200b ", "visible text"),
    ],
)
def test_over_long_or_bad_fields_are_refused_naming_the_bound(field, value, bound) -> None:
    body = {"rating": "up", "question": "q?", field: value}
    with pytest.raises(ValidationError) as info:
        Feedback.model_validate(body)
    assert field in str(info.value) and bound in str(info.value)


def test_a_model_built_without_validation_is_checked_again_before_writing(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    sneaky = Feedback.model_construct(
        rating="up", question="q?", answer="", comment="x" * (COMMENT_MAX + 1), sources=[]
    )
    with pytest.raises(ValidationError):
        store.append(sneaky)
    assert not (tmp_path / "feedback.jsonl").exists()


def test_concurrent_appends_are_each_one_whole_line(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    comment = "y" * COMMENT_MAX

    def rate(n: int) -> None:
        for _ in range(20):
            store.append(_feedback(comment=comment), principal=f"p{n}")

    threads = [threading.Thread(target=rate, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records, total = store.read()
    assert total == 80 and store.skipped == 0
    assert len({r.id for r in records}) == 80


def test_an_unwritable_file_raises_and_acknowledges_nothing(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.mkdir()  # a folder where the file should be
    with pytest.raises(OSError):
        FeedbackStore(path).append(_feedback())


def test_a_full_file_refuses_a_rating_and_keeps_what_it_holds(tmp_path: Path) -> None:
    from rag.feedback import FeedbackFull

    store = FeedbackStore(tmp_path / "f.jsonl", max_bytes=2_000)
    kept = [store.append(Feedback(rating="up", question=f"q{i}?")) for i in range(3)]
    before = store.path.read_bytes()
    with pytest.raises(FeedbackFull):
        store.append(Feedback(rating="down", question="x" * 1_500))
    assert store.path.read_bytes() == before  # nothing written, nothing lost
    assert [r.id for r in store.read()[0]] == [r.id for r in kept]
