"""POST /v1/ingest, GET /v1/ingest (recent jobs) and GET /v1/ingest/{job_id}: ingestion jobs,
run by the API process or, with RAG_BROKER_URL, by the queue's workers (counts from Redis).
Either way a job is one shape (``JobOut``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep
from api.errors import APIError
from api.native.protocol import ErrorResponse, IngestRequest, JobList, JobOut
from ingest.jobs import NoSuchPath, OutsideRoots
from rag.answer.pipeline import run_sync

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={
        403: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def start_job(body: IngestRequest, services: ServicesDep) -> JobOut:
    if services.jobs is None:
        raise APIError(409, "ingest_disabled", "this API does not host an ingestion worker")
    try:
        job = await run_sync(services.jobs.submit, body.paths, body.prune)
    except OutsideRoots as exc:
        raise APIError(
            403,
            "forbidden_path",
            f"{exc.path[:200]} is outside the allowed ingest roots (the inbox, and "
            "RAG_INGEST_ROOTS)",
        ) from exc
    except NoSuchPath as exc:
        raise APIError(422, "invalid_request", str(exc)) from exc
    return JobOut.of(job)


@router.get("", response_model=JobList, responses={503: {"model": ErrorResponse}})
async def recent_jobs(services: ServicesDep) -> JobList:
    """The most recent jobs, newest first; ``queue``: they run on the ingestion queue."""
    jobs = await run_sync(services.jobs.recent) if services.jobs is not None else []
    return JobList(jobs=[JobOut.of(j) for j in jobs], queue=bool(services.settings.broker_url))


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def get_job(job_id: str, services: ServicesDep) -> JobOut:
    job = await run_sync(services.jobs.get, job_id) if services.jobs else None
    if job is None:
        raise APIError(404, "not_found", f"no ingest job {job_id[:80]}")
    return JobOut.of(job)
