"""The ingestion jobs service: one face and one job shape, whichever way ingestion runs.

``JobService`` is all the API needs of ingestion (its routes, its metrics and its start-up):
``JobManager`` (``ingest.jobs.inprocess``) runs jobs in this process, one at a time, and
``QueueJobs`` (``ingest.jobs.queued``) puts them on the ingestion queue (RAG_BROKER_URL).
``open_jobs`` (``ingest.jobs``) picks one from the settings.

Both report a job as a ``JobView``, the union of what each knows, so that a client reads one
shape: the queue's per-file ``counts``, ``files_total`` and ``failures`` are filled for an
in-process job too (from its progress while it runs, from its summary once it ends), and
the in-process ``progress``, ``summary``, ``attempts`` and ``started_at`` exist on a queued
job (the progress from its counts; no summary). Fields a mode cannot know keep their
defaults (``None``, 0 or empty).

A view names files relative to the shared root they lie under (``PathNames``): the inbox
or a ``RAG_INGEST_ROOTS`` folder; a root itself reads ``.``. Absolute paths stay in the
records, the logs and the operator's CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, computed_field

from ingest.files.access import JobAccess
from ingest.outcomes import Summary

JobState = Literal["queued", "running", "done", "failed", "interrupted"]

#: Failed (and retrying) files a view lists, at most.
FAILURES_SHOWN = 100

#: The metrics hook: called with a finished in-process job's summary.
FinishHook = Callable[[Summary], None]


class FileProblem(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    error: str


class FileCounts(BaseModel):
    """A job's files by state; they add up to ``files_total`` (once the files are known)."""

    model_config = ConfigDict(frozen=True)
    queued: int = 0
    running: int = 0
    retrying: int = 0
    done: int = 0
    unchanged: int = 0
    failed: int = 0


class JobProgress(BaseModel):
    model_config = ConfigDict(frozen=True)
    files_total: int | None = Field(default=None, description="None until the files are listed")
    files_done: int = 0
    tokens: int = 0


class JobView(BaseModel):
    """One ingestion job as the API, the CLI and the page show it. Every field but the id
    and the status has a default, so records written by earlier versions still load."""

    model_config = ConfigDict(frozen=True)
    job_id: str
    status: JobState = Field(
        description="queued, running, done, failed (in-process: the run itself failed; "
        "failed files are in counts and failures) or interrupted (in-process: the service "
        "stopped; the job resumes at its next start)"
    )
    origin: str = Field("", description="request, inbox (at start), cli, ...")
    owner: str = Field(
        "", description="the principal that submitted it ('' for the service's own jobs)"
    )
    paths: list[str] = Field(default_factory=list)
    prune: bool = False
    created_at: float = 0.0
    started_at: float | None = Field(None, description="in-process: when its run began")
    resumed_at: float | None = Field(None, description="in-process: when it was resumed")
    finished_at: float | None = None
    attempts: int = Field(1, description="in-process: starts of the job (resumes included)")
    files_total: int = Field(0, description="files of the job (0 until they are listed)")
    tasks_total: int = Field(0, description="queue tasks the job was split into (in-process: 1)")
    counts: FileCounts = Field(
        default_factory=FileCounts,
        description="files by state (in-process: a running job's files read so far are "
        "'running', their outcomes are known when the run ends)",
    )
    removed: int = Field(0, description="stored documents whose files were gone (prune)")
    failures: list[FileProblem] = Field(
        default_factory=list, description=f"failed files with reasons (the first {FAILURES_SHOWN})"
    )
    retrying: list[FileProblem] = Field(
        default_factory=list, description="queue: files being retried, with the last fault"
    )
    progress: JobProgress = Field(default_factory=JobProgress)
    summary: dict[str, Any] | None = Field(
        None, description="in-process: the run's summary (python -m ingest --json's shape)"
    )
    error: str | None = Field(None, description="why the job failed as a whole")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def files_finished(self) -> int:
        """Files with an outcome: done, unchanged or failed."""
        return self.counts.done + self.counts.unchanged + self.counts.failed


class JobService(Protocol):
    """Ingestion jobs as the API uses them. ``submit`` admits only paths inside the allowed
    roots (``OutsideRoots``, before looking at existence) that exist (``NoSuchPath``); a
    queue that cannot be reached is ``QueueUnavailable``."""

    #: True when jobs run on the ingestion queue: ``outcomes`` then counts every worker's.
    on_queue: bool
    #: Called when an in-process job ends (the queue counts its outcomes in Redis instead).
    on_finish: FinishHook | None

    def start(self) -> list[str]:
        """Pick up what a previous process left (the inbox, unfinished jobs); returns the
        ids of the jobs queued."""
        ...

    def submit(
        self,
        paths: Sequence[str | Path],
        prune: bool,
        origin: str = "request",
        owner: str = "",
        access: JobAccess | None = None,
    ) -> JobView:
        """``owner``: the principal's name (an ingester sees only its own jobs);
        ``access``: the access its documents get (``ingest.files.access``)."""
        ...

    def get(self, job_id: str) -> JobView | None: ...

    def recent(self, limit: int = 20) -> list[JobView]:
        """The latest jobs, newest first."""
        ...

    def queue_depth(self) -> float:
        """Work waiting (NaN when it cannot be known now)."""
        ...

    def outcomes(self) -> dict[str, int]:
        """Files finished over all jobs, by outcome (the queue's; empty in-process)."""
        ...

    def shutdown(self) -> None: ...


def inbox_has_files(inbox: Path) -> bool:
    """Something waits in the inbox (an upload saved just before a stop): hidden files
    (the upload temporaries) aside; an unreadable inbox counts as empty."""
    try:
        return any(not p.name.startswith(".") for p in inbox.iterdir())
    except OSError:
        return False


class PathNames:
    """Paths as a job's view shows them: relative to the deepest shared root they lie
    under (as given or resolved); a path under none (a record older than the roots) by its
    name only. No roots at all: paths are shown as they are."""

    def __init__(self, roots: Iterable[Path]) -> None:
        prefixes = set()
        for root in roots:
            absolute = str(Path(root).absolute())
            prefixes |= {absolute.rstrip("/") or "/", os.path.realpath(absolute)}
        self._roots = sorted(prefixes, key=len, reverse=True)

    def name(self, path: str) -> str:
        if not self._roots:
            return path
        for root in self._roots:
            if path == root:
                return "."
            if path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1 :]
        return Path(path).name

    def view(self, job: JobView) -> JobView:
        """The view with every path named (its paths, failures, retrying, summary)."""
        if not self._roots:
            return job
        summary = job.summary
        if summary is not None:
            summary = {
                **summary,
                **{
                    key: [{**item, "path": self.name(item["path"])} for item in summary[key]]
                    for key in ("failed", "warnings")
                    if isinstance(summary.get(key), list)
                },
            }
        return job.model_copy(
            update={
                "paths": [self.name(p) for p in job.paths],
                "failures": [
                    f.model_copy(update={"path": self.name(f.path)}) for f in job.failures
                ],
                "retrying": [
                    f.model_copy(update={"path": self.name(f.path)}) for f in job.retrying
                ],
                "summary": summary,
            }
        )
