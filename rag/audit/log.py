"""The audit trail: append-only JSON lines at ``RAG_AUDIT_LOG`` (default
``<data_dir>/audit/audit.jsonl``), rotated by size (``RAG_AUDIT_MAX_BYTES``, keeping
``RAG_AUDIT_BACKUPS`` files: ``audit.jsonl.1`` is the newest rotated one).

One line per event: ``time`` (ISO 8601, UTC), ``ts`` (epoch seconds), ``event`` (``search``,
``query``, ``chat``, ``document.get``, ``documents.list``, ``document.delete``, ``ingest``,
``upload``, ``access.change``...), ``request_id``, ``principal``, ``role``, ``route``,
``collections``, ``documents`` (the ids returned or touched), and where it applies
``before``/``after`` (ingest, delete, access changes). A question is written as its sha256
(``question_sha256``) unless ``RAG_AUDIT_QUESTIONS=true`` (then ``question``).

Writers: the API routes (``api.audit``), the ingest CLI, and anyone else through
``audit_log(settings).record(...)``. Writes are serialised by the handler's lock (one
process); processes sharing one file should each rotate rarely (a rotation by one is not
seen by the other's open handle until it reopens).
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.access import Principal
from rag.settings import AuditSettings

log = logging.getLogger(__name__)


def question_fields(question: str | None, keep_text: bool) -> dict[str, str]:
    """What a line says of a question: the text, or its sha256 (the default)."""
    if question is None:
        return {}
    if keep_text:
        return {"question": question}
    return {"question_sha256": hashlib.sha256(question.encode()).hexdigest()}


def parse_time(value: str | float | None) -> float | None:
    """Epoch seconds from a number or an ISO 8601 text (naive: UTC); ``ValueError`` else."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class AuditLog:
    """One audit file and its rotated backups; thread-safe."""

    def __init__(self, path: Path, *, questions: bool, max_bytes: int, backups: int) -> None:
        self.path = Path(path)
        self.questions = questions
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> AuditLog:
        return cls(
            settings.audit_path,
            questions=settings.audit_questions,
            max_bytes=settings.audit_max_bytes,
            backups=settings.audit_backups,
        )

    def record(
        self,
        event: str,
        *,
        principal: Principal | None = None,
        route: str = "",
        request_id: str | None = None,
        collections: Iterable[str] = (),
        documents: Iterable[str] = (),
        question: str | None = None,
        before: Any = None,
        after: Any = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Append one line (and return it). Never raises: a trail that cannot be written
        is logged as an error, the request it describes goes on."""
        now = time.time()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "ts": round(now, 3),
            "event": event,
            "request_id": request_id,
            "principal": principal.name if principal else None,
            "role": principal.role.value if principal else None,
            "route": route,
            "collections": sorted(set(collections)),
            "documents": list(dict.fromkeys(documents)),
            **question_fields(question, self.questions),
        }
        if before is not None:
            line["before"] = before
        if after is not None:
            line["after"] = after
        line.update(extra)
        text = json.dumps(line, ensure_ascii=False, default=str)
        try:
            self._handler.handle(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
        except Exception as exc:  # the handler reports its own errors; this is a last resort
            log.error("audit: writing %s failed: %s", self.path, exc)
        return line

    def files(self) -> list[Path]:
        """The current file and its rotated backups, oldest first."""
        rotated = [self.path.with_name(f"{self.path.name}.{n}") for n in range(self.backups, 0, -1)]
        return [p for p in [*rotated, self.path] if p.is_file()]

    def lines(self) -> Iterator[dict[str, Any]]:
        """Every readable line, oldest first (a torn or foreign line is skipped)."""
        self._handler.acquire()  # not during a rotation
        try:
            files = self.files()
            texts = []
            for path in files:
                try:
                    texts.append(path.read_text(encoding="utf-8", errors="replace"))
                except OSError:
                    continue
        finally:
            self._handler.release()
        for text in texts:
            for raw in text.splitlines():
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    yield item

    def read(
        self,
        *,
        principal: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching lines newest first, ``offset``/``limit`` applied; and how many match."""
        matching = [
            item
            for item in self.lines()
            if (principal is None or item.get("principal") == principal)
            and (since is None or float(item.get("ts", 0)) >= since)
            and (until is None or float(item.get("ts", 0)) < until)
        ]
        matching.reverse()
        return matching[offset : offset + limit], len(matching)

    def close(self) -> None:
        self._handler.close()


_LOGS: dict[tuple[Path, bool, int, int], AuditLog] = {}
_LOCK = threading.Lock()


def audit_log(settings: AuditSettings) -> AuditLog:
    """The process's one ``AuditLog`` for these settings (one handler per file)."""
    key = (
        settings.audit_path.absolute(),
        settings.audit_questions,
        settings.audit_max_bytes,
        settings.audit_backups,
    )
    with _LOCK:
        found = _LOGS.get(key)
        if found is None:
            found = _LOGS[key] = AuditLog.from_settings(settings)
        return found
