"""The tiny SQuAD-shaped corpus the benchmark tests run on (two articles, three questions)."""

import json
import shutil
from pathlib import Path

from tests.conftest import DOCS


def tiny_squad(tmp_path: Path) -> Path:
    """Write ``<tmp_path>/squad2-dev`` (articles and ``questions.jsonl``); returns it."""
    squad = tmp_path / "squad2-dev"
    (squad / "articles").mkdir(parents=True)
    shutil.copy(DOCS / "Normans.md", squad / "articles")
    shutil.copy(DOCS / "release-notes.txt", squad / "articles" / "Kestrel.md")
    questions = [
        {"question": "Who was the leader of the Norse raiders?", "answers": ["Rollo"]},
        {"question": "How many changes can the offline queue hold?", "answers": ["5,000"]},
        {"question": "What is the default session timeout?", "answers": ["45 minutes"]},
    ]
    (squad / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions))
    return squad


def tiny_store(tmp_path: Path, embedder, docs: dict[str, str]) -> Path:
    """``docs`` (name -> text) written under ``<tmp_path>/docs`` and ingested into a fresh
    store at ``<tmp_path>/data`` (closed again); returns the data dir."""
    from ingest.indexer import Indexer
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in docs.items():
        (folder / name).write_text(text)
    settings = Settings(data_dir=tmp_path / "data")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    try:
        assert not Indexer(settings, embedder, store).run([folder]).failed
    finally:
        store.close()
    return settings.data_dir
