"""Hand ingestion to a running API (which owns the embedded store) and wait for the result."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from rag.settings import Settings


class RemoteError(RuntimeError):
    pass


def ingest_via_api(settings: Settings, paths: list[Path], prune: bool = False,
                   poll_seconds: float = 0.5) -> dict[str, Any]:
    base = (settings.api_url or "").rstrip("/")
    try:
        response = httpx.post(f"{base}/v1/ingest", timeout=30, json={
            "paths": [str(p.absolute()) for p in paths], "prune": prune})
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach the API at {base}: {exc}") from exc
    if response.status_code != 202:
        raise RemoteError(f"the API refused the job ({response.status_code}): {response.text}")
    job_id = response.json()["job_id"]
    print(f"ingest job {job_id} running on {base}", file=sys.stderr)
    while True:
        job = httpx.get(f"{base}/v1/ingest/{job_id}", timeout=30).json()
        if job["status"] == "done" or job["status"] == "stopped":
            return job["summary"]
        if job["status"] == "failed":
            raise RemoteError(f"ingest job failed: {job['error']}")
        time.sleep(poll_seconds)
