"""Hand ingestion to a running API (which owns the embedded store) and wait for the result.

Sends ``RAG_API_CLIENT_KEY`` (default: the first of the API's own keys) as a bearer token.
Every failure, the API going away mid-job included, is a ``RemoteError`` with a one-line
message for the operator. The API answers a job in one shape (``JobView``) whichever way it
runs ingestion; a queued job has no summary, so one is made from its counts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, cast

import httpx

from ingest.files.access import JobAccess
from ingest.jobs import JobView
from ingest.outcomes import FailureJSON, SummaryJSON
from rag.settings import RemoteSettings


class RemoteError(RuntimeError):
    pass


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return " ".join(response.text.split())[:200]


def ingest_via_api(
    settings: RemoteSettings,
    paths: list[Path],
    prune: bool = False,
    poll_seconds: float = 0.5,
    access: JobAccess | None = None,
) -> SummaryJSON:
    """The job's summary (the CLI's ``--json`` shape); ``access``: the job's access fields
    given (collection, groups, users), sent as the API's fields."""
    base = (settings.api_url or "").rstrip("/")
    key = settings.client_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        try:
            body = {"paths": [str(p.absolute()) for p in paths], "prune": prune}
            response = client.post("/v1/ingest", json={**body, **_fields(access)})
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the API at {base} ({type(exc).__name__})") from exc
        if response.status_code == 401:
            raise RemoteError(
                f"the API at {base} refused the key (401): set "
                "RAG_API_CLIENT_KEY to one of its RAG_API_KEYS"
            )
        if response.status_code != 202:
            raise RemoteError(
                f"the API refused the job ({response.status_code}): {_message(response)}"
            )
        job_id = response.json()["job_id"]
        print(f"ingest job {job_id} running on {base}", file=sys.stderr)
        while True:
            try:
                answer = client.get(f"/v1/ingest/{job_id}")
                answer.raise_for_status()
                job = JobView.model_validate(answer.json())
            except (httpx.HTTPError, ValueError) as exc:
                raise RemoteError(
                    f"lost the API at {base} while job {job_id} was running "
                    f"({type(exc).__name__}); it resumes when the API starts again: "
                    f"GET /v1/ingest/{job_id}"
                ) from exc
            if job.status == "done":
                if job.summary is not None:  # in-process: the API's own Summary.as_dict()
                    return cast(SummaryJSON, job.summary)
                return _queue_summary(job)
            if job.status == "failed":
                raise RemoteError(f"ingest job {job_id} failed: {job.error}")
            if job.status == "interrupted":
                raise RemoteError(
                    f"the API stopped before job {job_id} finished; it resumes "
                    "when the API starts again"
                )
            time.sleep(poll_seconds)


def _fields(access: JobAccess | None) -> dict[str, Any]:
    """The access fields given, as ``POST /v1/ingest`` takes them (lists, not tuples)."""
    given = access.given if access is not None else {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}


def _queue_summary(job: JobView) -> SummaryJSON:
    """A job the API put on the queue (RAG_BROKER_URL there), in the CLI's summary shape:
    what the job board counts (no chunk or token counts, no stage times)."""
    seconds = (job.finished_at or 0) - job.created_at
    return SummaryJSON(
        files_seen=job.files_total,
        ingested=job.counts.done,
        unchanged=job.counts.unchanged,
        access_changed=0,
        removed=job.removed,
        failed=[FailureJSON(path=f.path, error=f.error) for f in job.failures],
        warnings=[],
        parents=0,
        passages=0,
        tokens=0,
        seconds=seconds,
        stages={},
        tokens_per_second=0.0,
    )
