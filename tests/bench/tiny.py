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
