"""POST /v1/ingest, GET /v1/ingest (recent jobs) and GET /v1/ingest/{job_id}: ingestion jobs,
run by the API process or, with RAG_BROKER_URL, by the queue's workers (counts from Redis)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep
from api.errors import APIError
from api.native.protocol import ErrorResponse, IngestRequest
from ingest.files.confine import Roots
from rag.answer.pipeline import run_sync

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])


@router.post(
    "",
    status_code=202,
    responses={
        403: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def start_job(body: IngestRequest, services: ServicesDep) -> dict[str, Any]:
    if services.jobs is None:
        raise APIError(409, "ingest_disabled", "this API does not host an ingestion worker")
    roots = Roots.of(services.settings.api_ingest_roots)
    for raw in body.paths:
        if not roots.contains(os.path.realpath(raw)):
            raise APIError(
                403,
                "forbidden_path",
                f"{raw[:200]} is outside the allowed ingest roots (the inbox, and "
                "RAG_INGEST_ROOTS)",
            )
        if not Path(raw).exists():
            raise APIError(422, "invalid_request", f"no such file or folder: {raw[:200]}")
    return await run_sync(
        services.jobs.submit, [str(Path(p).absolute()) for p in body.paths], body.prune
    )


@router.get("", responses={503: {"model": ErrorResponse}})
async def recent_jobs(services: ServicesDep) -> dict[str, Any]:
    """The most recent jobs of the queue (empty without RAG_BROKER_URL)."""
    recent = getattr(services.jobs, "recent", None)
    return {
        "jobs": await run_sync(recent) if recent else [],
        "queue": bool(services.settings.broker_url),
    }


@router.get("/{job_id}", responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def get_job(job_id: str, services: ServicesDep) -> dict[str, Any]:
    job = await run_sync(services.jobs.get, job_id) if services.jobs else None
    if job is None:
        raise APIError(404, "not_found", f"no ingest job {job_id[:80]}")
    return job
