"""The ingestion use case: walk, diff against stored hashes, parse, chunk, embed, replace.

One ``Indexer`` owns an embedder and a store and runs the use case end to end; its jobs
live apart: ``files.walk`` finds the files, ``prefetch`` runs ``Indexer._prepare`` (read,
hash, compare with the stored record, parse in the sandbox, chunk) a few files ahead on a
second thread, ``batching`` embeds passages in batches that span files and stores each
document, ``points`` assembles what is stored, and ``Indexer._pruned`` removes documents
whose files are gone. A run reports a ``Summary`` of typed ``FileOutcome``s and, while it
goes, ``ProgressEvent``s.

Crash safety, the invariants every part keeps:

- A document is written to the store only after all its vectors exist, and written as a
  replacement of its old version, so a failure at any point leaves the previous version
  intact and a re-run converges (point ids are deterministic: a repeat overwrites).
- A file whose content hash (its bytes, ``signature``, the pipeline version) is the one
  stored is not parsed again, so a re-run does only what is left.
- A document is the file read, not the name it was reached by: its ``source`` is the real
  path of the file opened (``ingest.files.identity``), so an alias of a stored file is
  ``unchanged`` and two names of one file in a run store it once (the second is
  ``unchanged``, with a warning naming the first). Outcomes report the path as named.
- A stop request (``should_stop``) ends the run after the file being worked on: what is
  already waiting for its vectors is embedded and stored, nothing after it is started.
- The summary is written by the run's own thread only; files prepared ahead but not reached
  before a stop are not reported (the next run decides them).
- Every parent, passage and record a run writes carries the file's access
  (``ingest.files.access``: the job's fields, ``.rag-access.toml`` files, the stored
  document, the defaults); an unchanged file whose access differs has it changed in place
  (``DocumentStore.set_access``, no re-embedding: ``FileOutcome.access_changed``); a file
  whose access cannot be decided (a malformed access file, a forbidden grant) fails.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from ingest.batching import EmbedBatch, Prepared
from ingest.files.access import AccessFileError, AccessResolver, JobAccess, as_access
from ingest.files.confine import Roots
from ingest.files.identity import canonical_source, content_hash, display_path
from ingest.files.walk import walk_all
from ingest.outcomes import FileOutcome, Outcome, Stages, Summary, TransientFailure
from ingest.parsing.limits import Limits, ParseFailure, read_checked_file
from ingest.parsing.ocr import check_languages
from ingest.parsing.sandbox import ParseSandbox
from ingest.points import name_under
from ingest.prefetch import prefetched
from ingest.progress import FileDone, Progress, ProgressEvent, RunStarted, TokensEmbedded
from rag import tracing
from rag.access import Principal, ReadScope, Role
from rag.documents import document_id
from rag.embedding.protocol import Embedder
from rag.embedding.sparse import BM25Encoder
from rag.settings import DefaultAccess, Settings
from rag.store.payloads import DocumentRecord
from rag.store.qdrant_store import QdrantStore
from rag.text.chunking import Chunker
from rag.text.tokens import use_model_dir

log = logging.getLogger(__name__)

#: Files parsed and chunked ahead of the embedding (bounded memory: their passages' text).
_PREFETCH_FILES = 8

#: One file's turn in the prefetch thread: waiting for vectors, or decided; its stage times.
_Step = tuple[Prepared | FileOutcome, Stages]


def _ignore(event: ProgressEvent) -> None:
    return None


class Indexer:
    """The ingest use case over one embedder and one store. ``run`` may be called again
    and again (the queue's worker process and the API reuse one ``Indexer``)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: QdrantStore,
        allowed_roots: list[Path] | None = None,
        sandbox: ParseSandbox | None = None,
        raise_transient: bool = False,
    ) -> None:
        """``settings``: the whole model, as the chunking, parsing, OCR and model-folder
        groups all shape what is stored (``signature``).

        ``allowed_roots``: every file read must resolve below one of these (the API
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
        self.limits = Limits.from_settings(settings.parsing, settings.ocr_settings)
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

    def run(
        self,
        roots: list[Path],
        prune: bool = False,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        exclude: Callable[[Path], bool] | None = None,
        access: JobAccess | None = None,
    ) -> Summary:
        """``_run`` in an ``ingest.run`` span (its files' spans are children of it)."""
        with tracing.span("ingest.run", rag_roots=len(roots), rag_prune=prune) as running:
            summary = self._run(roots, prune, progress, should_stop, exclude, access, running)
            tracing.set_attrs(
                running,
                rag_files=summary.files_seen,
                rag_passages=summary.passages,
                rag_failed=len(summary.failed),
            )
            return summary

    def _run(
        self,
        roots: list[Path],
        prune: bool,
        progress: Progress | None,
        should_stop: Callable[[], bool] | None,
        exclude: Callable[[Path], bool] | None,
        access: JobAccess | None,
        running: tracing.Span,
    ) -> Summary:
        """Ingest every file under ``roots``; with ``prune``, also remove the stored
        documents under them whose files are gone, or that another name of a stored file
        left (not after a stop request). ``exclude``: files the walk leaves out (those whose
        document was deleted, ``ingest.erasure``). ``access``: the job's access fields and
        owner (None: nothing given, the operator's run)."""
        started = time.perf_counter()
        emit = progress or _ignore
        summary = Summary()
        roots = [r.absolute() for r in roots]
        confinement = self.confinement(roots)
        with tracing.span("ingest.walk", rag_roots=len(roots)) as walking:
            files, problems = walk_all(roots, confinement)
            tracing.set_attrs(walking, rag_files=len(files), rag_problems=len(problems))
        if exclude is not None:
            files = [f for f in files if not exclude(f)]
        for problem in problems:
            source = display_path(problem.path)
            summary.record(FileOutcome(problem.path, source, Outcome.FAILED, problem.reason))
        summary.files_seen = len(files)
        emit(RunStarted(len(files)))
        batch = EmbedBatch(self.embedder, self.store.documents, self.sparse, self.raise_transient)
        documents: dict[str, str] = {}  # this run's documents: source -> the path first named
        resolver = AccessResolver(access)  # access files read once per folder per run

        def prepare(path: Path) -> _Step:  # on the prefetch thread: the parent is explicit
            with tracing.span(
                "ingest.file", parent=running, rag_file=tracing.text(display_path(path))
            ) as preparing:
                step = self._prepare(path, confinement, documents, resolver)
                if isinstance(step[0], FileOutcome):
                    tracing.set_attrs(preparing, rag_outcome=step[0].state.value)
                return step

        steps = prefetched(files, prepare, _PREFETCH_FILES, should_stop)
        with closing(steps):
            for path, (result, stages) in steps:
                if should_stop and should_stop():
                    break  # what is already prepared is flushed below; the rest is not started
                summary.stages.add(stages)
                if isinstance(result, Prepared):
                    batch.add(result)
                else:
                    summary.record(result)
                if batch.full:
                    self._flush(batch, summary, emit)
                emit(FileDone(display_path(path)))
        self._flush(batch, summary, emit)
        if prune and not (should_stop and should_stop()):
            for outcome in self._pruned(roots, {display_path(f) for f in files} | set(documents)):
                summary.record(outcome)
        summary.seconds = time.perf_counter() - started
        return summary

    def prune(self, roots: list[Path], present: set[str] | None = None) -> int:
        """Delete stored documents under the given roots whose files no longer exist (and
        those stored under another name of a stored file: ``_pruned``); how many were
        deleted."""
        return len(self._pruned(roots, present or set()))

    # --- steps -----------------------------------------------------------------------------
    def _prepare(
        self,
        path: Path,
        confinement: Roots,
        documents: dict[str, str],
        resolver: AccessResolver | None = None,
    ) -> _Step:
        """Read, hash, compare with the stored record, parse and chunk one file (on the
        prefetch thread: it touches no shared state but the sandbox, which locks, and
        ``documents``, the run's documents, which only this thread writes)."""
        named = display_path(path)
        stages = Stages()
        resolver = resolver or AccessResolver()
        try:
            resolved = resolver.resolve(path)  # before any byte is read
            t0 = time.perf_counter()
            read = read_checked_file(path, self.limits, confinement)
            source = canonical_source(read.real)
            digest = content_hash(read.data, self.signature)
            stages.read += time.perf_counter() - t0
            first = documents.setdefault(source, named)
            if first != named:  # another name of a file this run has already taken
                alias = f"the same file as {first[:200]} (stored once)"
                return FileOutcome(path, named, Outcome.UNCHANGED, warnings=(alias,)), stages
            stored = self._stored(source)
            stamp = resolved.stamp(stored, self.settings.default_collection)
            if stored is not None and stamp != {"collection": stored.collection, "acl": stored.acl}:
                self._may_change(resolver.job, stored)
                if stored.content_hash == digest:
                    self._set_access(stored.document_id, stamp)
                    unchanged = FileOutcome(path, named, Outcome.UNCHANGED, access_changed=True)
                    return unchanged, stages
            if stored is not None and stored.content_hash == digest:
                return FileOutcome(path, named, Outcome.UNCHANGED), stages
            t1 = time.perf_counter()
            with tracing.span("ingest.parse", rag_bytes=len(read.data)) as parsing:
                doc = self.sandbox.parse(path, read.data, digest, self.limits)
                tracing.set_attrs(  # OCR runs inside the parse (the sandbox): its share
                    parsing, rag_ocr_seconds=round(doc.ocr_seconds, 4), rag_chars=len(doc.text)
                )
            doc.source = source  # the document is the real file, whatever name reached it
            doc.name = name_under(source, confinement.paths)  # what users see, not the path
            t2 = time.perf_counter()
            with tracing.span("ingest.chunk") as chunking:
                parents = self.chunker.parents(doc)
                tracing.set_attrs(
                    chunking,
                    rag_parents=len(parents),
                    rag_passages=sum(len(p.passages) for p in parents),
                )
            t3 = time.perf_counter()
            stages.parse += max(0.0, t2 - t1 - doc.ocr_seconds)
            stages.ocr += doc.ocr_seconds  # inside the parse, reported apart
            stages.chunk += t3 - t2
            return Prepared(path, doc, parents, stamp, resolver.job.owner), stages
        except (ParseFailure, AccessFileError) as exc:
            error = str(exc)
        except TransientFailure:
            raise
        except Exception as exc:  # a bug or an unexpected library error: report, continue
            log.exception("unexpected failure on %s", named)
            error = f"{type(exc).__name__}: {exc}"
        return FileOutcome(path, named, Outcome.FAILED, error), stages

    def _stored(self, source: str) -> DocumentRecord | None:
        try:
            return self.store.documents.get_document(document_id(source))
        except Exception as exc:
            if not self.raise_transient:
                raise
            raise TransientFailure(f"store unavailable: {type(exc).__name__}: {exc}") from exc

    def _may_change(self, job: JobAccess, stored: DocumentRecord) -> None:
        """An ingester's job may change the access only of a document it can read now
        (``AccessFileError`` otherwise): naming a file is no way into someone else's."""
        if job.owner_groups is None:
            return
        who = Principal(job.owner, Role.ingester, job.owner_groups)
        everyone = self.settings.default_access is DefaultAccess.everyone
        if not ReadScope.of(who, default_is_everyone=everyone).allows(
            stored.collection, stored.acl
        ):
            raise AccessFileError(
                f"{job.owner} may not change the access of a stored document it cannot read"
            )

    def _set_access(self, doc_id: str, stamp: dict[str, Any]) -> None:
        try:
            self.store.documents.set_access(doc_id, as_access(stamp))
        except Exception as exc:
            if not self.raise_transient:
                raise
            raise TransientFailure(f"store unavailable: {type(exc).__name__}: {exc}") from exc

    def _flush(self, batch: EmbedBatch, summary: Summary, emit: Progress) -> None:
        flushed = batch.flush(summary.stages)
        if flushed.tokens:
            emit(TokensEmbedded(flushed.tokens))
        for outcome in flushed.outcomes:
            summary.record(outcome)

    def _pruned(self, roots: list[Path], present: set[str]) -> list[FileOutcome]:
        """The stored documents under ``roots`` (as named or resolved) that are removed:
        those whose file is gone, and those stored under another name of a file (before
        documents were their real paths) whose real path is stored too."""
        prefixes = {display_path(r) for r in roots} | {
            canonical_source(os.path.realpath(r)) for r in roots
        }
        removed = []
        for record in self.store.documents.list_documents():
            source = record.source
            under = any(source == p or source.startswith(p.rstrip("/") + "/") for p in prefixes)
            if not under or source in present and self._canonical(source) == source:
                continue
            if not Path(source).exists() or self._alias_of_stored(source):
                self.store.documents.delete_document(record.document_id)
                removed.append(FileOutcome(Path(source), source, Outcome.REMOVED))
        return removed

    @staticmethod
    def _canonical(source: str) -> str:
        return canonical_source(os.path.realpath(source))

    def _alias_of_stored(self, source: str) -> bool:
        real = self._canonical(source)
        return real != source and self.store.documents.get_document(document_id(real)) is not None
