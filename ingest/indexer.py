"""The ingestion use case: walk, diff against stored hashes, parse, chunk, embed, replace.

One ``Indexer`` owns an embedder and a store. Files are parsed one by one, but their
passages are embedded in batches that span files (e-mails are a passage or two each, and
batching them is most of embedding throughput). A document is written to the store only
after all its vectors exist, and written as a replacement of its old version, so a failure
at any point leaves the previous version intact and a re-run converges.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.files.confine import Roots
from ingest.files.walk import WalkProblem, iter_files
from ingest.parsing.dispatch import (
    Limits,
    ParseFailure,
    content_hash,
    display_path,
    read_checked,
)
from ingest.parsing.ocr import check_languages
from ingest.parsing.sandbox import ParseSandbox
from rag.documents import (
    Parent,
    ParsedDocument,
    document_id,
    parent_point_id,
    passage_point_id,
)
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder
from rag.settings import Settings
from rag.store.payloads import DocumentRecord, ParentPayload, PassagePayload
from rag.store.qdrant_store import ParentPoint, PassagePoint, QdrantStore, folders_of
from rag.text.chunking import Chunker
from rag.text.tokens import use_model_dir

log = logging.getLogger(__name__)

#: Embed once this many passages are waiting (several files' worth).
_FLUSH_PASSAGES = 256
#: Files parsed and chunked ahead of the embedding (bounded memory: their passages' text).
_PREFETCH_FILES = 8


class TransientFailure(RuntimeError):
    """The store or the embedding server failed: the same files may well succeed later
    (the queue retries them); raised only by a worker built with ``raise_transient``."""


@dataclass
class Summary:
    """What a run did; ``as_dict`` is the ``--json`` contract."""

    files_seen: int = 0
    ingested: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    #: ingested files with parts left out: {"path", "warning"} (blank or unreadable scans)
    warnings: list[dict[str, str]] = field(default_factory=list)
    parents: int = 0
    passages: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(
        default_factory=lambda: {
            "read": 0.0,
            "parse": 0.0,
            "ocr": 0.0,
            "chunk": 0.0,
            "embed": 0.0,
            "store": 0.0,
        }
    )
    #: path -> "ingested" | "unchanged" | "failed" (not in ``as_dict``)
    outcomes: dict[str, str] = field(default_factory=dict)

    def fail(self, path: str, error: str) -> None:
        self.failed.append({"path": path, "error": error})
        self.outcomes[path] = "failed"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("outcomes")
        data["seconds"] = round(self.seconds, 3)
        data["stages"] = {k: round(v, 3) for k, v in self.stages.items()}
        data["tokens_per_second"] = round(self.tokens / self.seconds, 1) if self.seconds else 0.0
        return data


@dataclass
class _Pending:
    doc: ParsedDocument
    parents: list[Parent]


#: progress(event, detail): "file" after each file, "tokens" when passages are embedded.
Progress = Callable[[str, dict[str, Any]], None]


class Indexer:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: QdrantStore,
        allowed_roots: list[Path] | None = None,
        sandbox: ParseSandbox | None = None,
        raise_transient: bool = False,
    ) -> None:
        """``allowed_roots``: every file read must resolve below one of these (the API
        passes the inbox and RAG_INGEST_ROOTS); None confines each run to the paths it is
        given, so a link inside a named folder never leads out of it.

        ``raise_transient``: a store or embedding-server fault raises ``TransientFailure``
        (the queue retries the task) instead of becoming a failure line per file."""
        self.settings = settings
        self.raise_transient = raise_transient
        use_model_dir(settings.model_dir)
        self.allowed_roots = allowed_roots
        self.sandbox = sandbox or ParseSandbox.shared()
        self.embedder = embedder
        self.store = store
        self.sparse = BM25Encoder()
        self.chunker = Chunker(
            embedder.token_offsets,
            parent_tokens=settings.parent_tokens,
            passage_tokens=settings.passage_tokens,
            passage_max=embedder.max_tokens,
        )
        self.limits = Limits.from_settings(settings)
        if settings.ocr:
            check_languages(settings.ocr_languages)  # a missing language fails at start
        # Everything that shapes stored points: changing any of it re-ingests on next run.
        self.signature = (
            f"{embedder.name}|{embedder.dimension}|{settings.parent_tokens}|"
            f"{settings.passage_tokens}|{embedder.max_tokens}|{settings.pdf_text}"
        )
        if settings.ocr:
            self.signature += (
                f"|ocr:{settings.ocr_languages}:{settings.ocr_dpi}:"
                f"{settings.ocr_min_confidence:g}:{settings.ocr_layout}"
            )

    # --- public ----------------------------------------------------------------------------
    def confinement(self, roots: Iterable[Path]) -> Roots:
        return Roots.of(self.allowed_roots if self.allowed_roots is not None else roots)

    def discover(
        self, roots: Iterable[Path], confinement: Roots | None = None
    ) -> tuple[list[Path], list[WalkProblem]]:
        roots = list(roots)
        confinement = confinement or self.confinement(roots)
        files: list[Path] = []
        problems: list[WalkProblem] = []
        for root in roots:
            for item in iter_files(root, confinement):
                (problems if isinstance(item, WalkProblem) else files).append(item)
        return files, problems

    def run(
        self,
        roots: list[Path],
        prune: bool = False,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Summary:
        started = time.perf_counter()
        summary = Summary()
        roots = [r.absolute() for r in roots]
        confinement = self.confinement(roots)
        files, problems = self.discover(roots, confinement)
        for problem in problems:
            summary.fail(display_path(problem.path), problem.reason)
        summary.files_seen = len(files)
        if progress:
            progress("start", {"files": len(files)})
        pending: list[_Pending] = []
        waiting = 0
        for path, item in self._prepared(files, summary, confinement, should_stop):
            if should_stop and should_stop():
                break  # what is already prepared is flushed below; the rest is not started
            if item is not None:
                pending.append(item)
                waiting += sum(len(p.passages) for p in item.parents)
            if waiting >= _FLUSH_PASSAGES:
                self._flush(pending, summary, progress)
                pending, waiting = [], 0
            if progress:
                progress("file", {"path": str(path)})
        self._flush(pending, summary, progress)
        if prune and not (should_stop and should_stop()):
            summary.removed = self.prune(roots, {display_path(f) for f in files})
        summary.seconds = time.perf_counter() - started
        return summary

    # --- steps -----------------------------------------------------------------------------
    def _prepared(
        self,
        files: list[Path],
        summary: Summary,
        confinement: Roots,
        should_stop: Callable[[], bool] | None,
    ) -> Iterator[tuple[Path, _Pending | None]]:
        """Files read, parsed and chunked by a second thread, up to ``_PREFETCH_FILES`` ahead,
        so the parser process (and OCR) works on the next files while this thread embeds
        and stores: the pipeline is as fast as its slowest stage, not their sum."""
        ready: queue.Queue[tuple[Path, _Pending | None] | None] = queue.Queue(_PREFETCH_FILES)
        halt = threading.Event()
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                for path in files:
                    if halt.is_set() or (should_stop and should_stop()):
                        break
                    item = self._prepare(path, summary, confinement)
                    while not halt.is_set():
                        try:
                            ready.put((path, item), timeout=0.5)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # a bug: the consumer re-raises it, never hangs
                errors.append(exc)
            finally:
                ready.put(None)  # the end, also after an unexpected error

        producer = threading.Thread(target=produce, name="ingest-prepare", daemon=True)
        producer.start()
        try:
            while (entry := ready.get()) is not None:
                yield entry
            if errors:
                raise errors[0]
        finally:
            halt.set()  # the consumer stopped early: let the producer finish its file
            while producer.is_alive():
                try:
                    ready.get(timeout=0.5)  # unblock it; what it prepared is not stored
                except queue.Empty:
                    continue
            producer.join()

    def _prepare(self, path: Path, summary: Summary, confinement: Roots) -> _Pending | None:
        source = display_path(path)
        try:
            t0 = time.perf_counter()
            data = read_checked(path, self.limits, confinement)
            digest = content_hash(data, self.signature)
            summary.stages["read"] += time.perf_counter() - t0
            try:
                stored = self.store.get_document(document_id(source))
            except Exception as exc:
                if not self.raise_transient:
                    raise
                raise TransientFailure(f"store unavailable: {type(exc).__name__}: {exc}") from exc
            if stored is not None and stored.content_hash == digest:
                summary.unchanged += 1
                summary.outcomes[source] = "unchanged"
                return None
            t1 = time.perf_counter()
            doc = self.sandbox.parse(path, data, digest, self.limits)
            t2 = time.perf_counter()
            parents = self.chunker.parents(doc)
            t3 = time.perf_counter()
            summary.stages["parse"] += max(0.0, t2 - t1 - doc.ocr_seconds)
            summary.stages["ocr"] += doc.ocr_seconds  # inside the parse, reported apart
            summary.stages["chunk"] += t3 - t2
            summary.warnings.extend({"path": source, "warning": w} for w in doc.warnings)
            return _Pending(doc, parents)
        except ParseFailure as exc:
            summary.fail(source, str(exc))
        except TransientFailure:
            raise
        except Exception as exc:  # a bug or an unexpected library error: report, continue
            log.exception("unexpected failure on %s", source)
            summary.fail(source, f"{type(exc).__name__}: {exc}")
        return None

    def _flush(self, pending: list[_Pending], summary: Summary, progress: Progress | None) -> None:
        if not pending:
            return
        texts = [ps.text for item in pending for parent in item.parents for ps in parent.passages]
        t0 = time.perf_counter()
        try:
            vectors = self.embedder.embed_passages(texts) if texts else []
        except Exception as exc:
            log.warning("embedding failed: %s: %s", type(exc).__name__, exc)
            if self.raise_transient and getattr(exc, "transient", True):
                raise TransientFailure(f"embedding failed: {exc}") from exc
            for item in pending:
                summary.fail(item.doc.source, f"embedding failed: {type(exc).__name__}: {exc}")
            return
        summary.stages["embed"] += time.perf_counter() - t0
        if progress:
            progress("tokens", {"tokens": sum(p.tokens for i in pending for p in i.parents)})
        cursor = 0
        for item in pending:
            count = sum(len(p.passages) for p in item.parents)
            t1 = time.perf_counter()
            try:
                self._store(item, vectors[cursor : cursor + count])
            except Exception as exc:
                log.exception("store failed for %s", item.doc.source)
                if self.raise_transient:
                    raise TransientFailure(f"store failed: {type(exc).__name__}: {exc}") from exc
                summary.fail(item.doc.source, f"store failed: {type(exc).__name__}: {exc}")
                cursor += count
                continue
            summary.stages["store"] += time.perf_counter() - t1
            cursor += count
            summary.ingested += 1
            summary.outcomes[item.doc.source] = "ingested"
            summary.parents += len(item.parents)
            summary.passages += count
            summary.tokens += sum(p.tokens for p in item.parents)

    def _store(self, item: _Pending, vectors: Any) -> None:
        doc = item.doc
        doc_id, digest = doc.id, doc.content_hash
        parents: list[ParentPoint] = []
        passages: list[PassagePoint] = []
        folders = folders_of(doc.source)
        v = 0
        for parent in item.parents:
            pid = parent_point_id(doc_id, digest, parent.index)
            parents.append(
                ParentPoint(
                    pid,
                    ParentPayload(
                        document_id=doc_id,
                        content_hash=digest,
                        source=doc.source,
                        file_type=doc.file_type,
                        title=doc.title,
                        parent_index=parent.index,
                        text=parent.text,
                        start=parent.start,
                        end=parent.end,
                        tokens=parent.tokens,
                        pages=parent.pages,
                        heading=parent.heading,
                    ),
                )
            )
            for passage in parent.passages:
                passages.append(
                    PassagePoint(
                        passage_point_id(doc_id, digest, parent.index, passage.index),
                        dense=[float(x) for x in vectors[v]],
                        sparse=self.sparse.encode_document(passage.text),
                        payload=PassagePayload(
                            document_id=doc_id,
                            content_hash=digest,
                            source=doc.source,
                            file_type=doc.file_type,
                            parent_id=pid,
                            parent_index=parent.index,
                            passage_index=passage.index,
                            start=passage.start,
                            end=passage.end,
                            folders=folders,
                        ),
                    )
                )
                v += 1
        record = DocumentRecord(
            document_id=doc_id,
            content_hash=digest,
            source=doc.source,
            file_type=doc.file_type,
            title=doc.title,
            size_bytes=doc.size_bytes,
            pages=doc.pages,
            parents=len(parents),
            passages=len(passages),
            tokens=sum(p.tokens for p in item.parents),
            chars=len(doc.text),
            ocr_confidence={str(k): v for k, v in doc.ocr_confidence.items()},
            warnings=list(doc.warnings),
        )
        self.store.replace_document(record, parents, passages)

    def prune(self, roots: list[Path], present: set[str] | None = None) -> int:
        """Delete stored documents under the given roots whose files no longer exist."""
        prefixes = [display_path(r) for r in roots]
        removed = 0
        for record in self.store.list_documents():
            source = record.source
            under = any(source == p or source.startswith(p.rstrip("/") + "/") for p in prefixes)
            if under and source not in (present or set()) and not Path(source).exists():
                self.store.delete_document(record.document_id)
                removed += 1
        return removed
