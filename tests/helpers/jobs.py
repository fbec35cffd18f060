"""Waiting on an ingestion job through the API (``GET /v1/ingest/{job_id}``)."""

from __future__ import annotations

import time
from typing import Any

import httpx


def finished_job(
    url: str, job_id: str, headers: dict[str, str] | None = None, polls: int = 600
) -> dict[str, Any]:
    """The job's view once it is no longer queued or running, asked for every 0.2 s (as
    ``headers`` say who asks); fails the test after ``polls`` asks."""
    for _ in range(polls):
        job = httpx.get(f"{url}/v1/ingest/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")
