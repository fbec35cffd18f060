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
from typing import Any

import httpx

from ingest.jobs import JobView
from rag.settings import Settings


class RemoteError(RuntimeError):
    pass


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return " ".join(response.text.split())[:200]


def ingest_via_api(
    settings: Settings,
    paths: list[Path],
    prune: bool = False,
    poll_seconds: float = 0.5,
    access: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``access``: the job's access fields given (collection, groups, users)."""
    base = (settings.api_url or "").rstrip("/")
    key = settings.client_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        try:
            body = {"paths": [str(p.absolute()) for p in paths], "prune": prune}
            response = client.post("/v1/ingest", json={**body, **(access or {})})
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
                return job.summary if job.summary is not None else _queue_summary(job)
            if job.status == "failed":
                raise RemoteError(f"ingest job {job_id} failed: {job.error}")
            if job.status == "interrupted":
                raise RemoteError(
                    f"the API stopped before job {job_id} finished; it resumes "
                    "when the API starts again"
                )
            time.sleep(poll_seconds)


def _queue_summary(job: JobView) -> dict[str, Any]:
    """A job the API put on the queue (RAG_BROKER_URL there), in the CLI's summary shape."""
    return {
        "files_seen": job.files_total,
        "ingested": job.counts.done,
        "unchanged": job.counts.unchanged,
        "removed": job.removed,
        "failed": [f.model_dump() for f in job.failures],
        "warnings": [],
        "parents": 0,
        "passages": 0,
        "tokens": 0,
        "stages": {},
        "seconds": (job.finished_at or 0) - job.created_at,
    }
