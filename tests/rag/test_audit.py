"""The audit trail's file: rotation, reading back, the question policy, the CLI's line."""

from __future__ import annotations

import argparse
import hashlib
import json

from rag.access import Principal, Role
from rag.audit import AuditLog, audit_log
from rag.settings import Settings

HANA = Principal("hana", Role.reader, frozenset({"hr"}))


def test_lines_rotate_by_size_and_are_read_back_newest_first(tmp_path):
    trail = AuditLog(tmp_path / "a.jsonl", questions=True, max_bytes=10_000, backups=3)
    for n in range(200):
        trail.record("search", principal=HANA, question=f"q{n}", documents=["d", "d", "e"])
    assert (tmp_path / "a.jsonl.1").is_file() and (tmp_path / "a.jsonl.3").is_file()
    assert not (tmp_path / "a.jsonl.4").exists()
    entries, total = trail.read(limit=5)
    assert [e["question"] for e in entries] == ["q199", "q198", "q197", "q196", "q195"]
    assert entries[0]["documents"] == ["d", "e"] and entries[0]["role"] == "reader"
    assert 60 < total < 200  # the current file and the rotated ones kept
    page, _ = trail.read(limit=5, offset=5)
    assert page[0]["question"] == "q194"
    assert trail.read(principal="someone else") == ([], 0)
    trail.close()


def test_questions_are_hashed_unless_asked_and_the_default_path(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.audit_path == tmp_path / "data" / "audit" / "audit.jsonl"
    line = audit_log(settings).record("query", principal=HANA, question="the secret question")
    assert "question" not in line
    assert line["question_sha256"] == hashlib.sha256(b"the secret question").hexdigest()
    text = settings.audit_path.read_text()
    assert "the secret question" not in text and line["question_sha256"] in text


def test_the_ingest_cli_writes_its_line(tmp_path, monkeypatch):
    from ingest.__main__ import _audit

    settings = Settings(data_dir=tmp_path / "data")
    args = argparse.Namespace(paths=[tmp_path / "docs"], prune=True)
    _audit(settings, args, {"ingested": 2, "unchanged": 0, "failed": [{"path": "x"}], "removed": 1})
    (line,) = [json.loads(t) for t in settings.audit_path.read_text().splitlines()]
    assert line["event"] == "ingest" and line["route"] == "cli" and line["role"] == "admin"
    assert line["after"] == {
        "paths": [str(tmp_path / "docs")],
        "prune": True,
        "ingested": 2,
        "unchanged": 0,
        "failed": 1,
        "removed": 1,
    }
