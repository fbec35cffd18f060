"""POST /v1/ingest, GET /v1/ingest (recent jobs) and GET /v1/ingest/{job_id}: ingestion jobs,
run by the API process or, with RAG_BROKER_URL, by the queue's workers (counts from Redis).
Either way a job is one shape (``JobOut``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api import audit
from api.deps import IngesterDep, ServicesDep
from api.errors import APIError
from api.native.protocol import IngestRequest, JobList, JobOut
from api.routes.responses import errors
from ingest.files.access import JobAccess, split_names
from ingest.jobs import JobView, NoSuchPath, OutsideRoots
from rag.access import AccessError, Action, Principal
from rag.answer.pipeline import run_sync

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

#: Recent jobs read to find an ingester's own (the list shows 20 at most).
OWN_JOBS_SCANNED = 200


def job_access(
    principal: Principal,
    collection: str | None,
    groups: list[str] | None,
    users: list[str] | None,
) -> JobAccess:
    """The access fields of a job ``principal`` submits (None: not given), checked against
    the grant rule before anything is stored: an ingester may grant only its own groups and
    itself (403 ``forbidden`` naming the group); an admin anything. 422 on a bad name."""
    try:
        access = JobAccess(
            collection=collection.strip() if collection is not None else None,
            groups=split_names(groups),
            users=split_names(users),
            owner=principal.name,
            owner_groups=None if principal.is_admin else principal.groups,
        )
    except AccessError as exc:
        raise APIError(422, "invalid_request", str(exc)) from exc
    reason = access.violation()
    if reason is not None:
        raise APIError(403, "forbidden", reason)
    return access


def _own(job: JobView, principal: Principal) -> bool:
    """An admin sees every job; an ingester only those it submitted."""
    return principal.can(Action.manage) or (bool(job.owner) and job.owner == principal.name)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=errors(403, 409, 422, 503),
)
async def start_job(
    body: IngestRequest, request: Request, services: ServicesDep, principal: IngesterDep
) -> JobOut:
    if body.prune and not principal.can(Action.manage):  # prune deletes: admins only
        raise APIError(
            403,
            "forbidden",
            f"the {principal.role.value} role may not prune (signed in as {principal.name})",
        )
    access = job_access(principal, body.collection, body.groups, body.users)
    if services.jobs is None:
        raise APIError(409, "ingest_disabled", "this API does not host an ingestion worker")
    try:
        job = await run_sync(
            services.jobs.submit, body.paths, body.prune, "request", principal.name, access
        )
    except OutsideRoots as exc:
        raise APIError(
            403,
            "forbidden_path",
            f"{exc.path[:200]} is outside the allowed ingest roots (the inbox, and "
            "RAG_INGEST_ROOTS)",
        ) from exc
    except NoSuchPath as exc:
        raise APIError(422, "invalid_request", str(exc)) from exc
    audit.record(
        request,
        principal,
        "ingest",
        after={"job": job.job_id, "paths": job.paths, "prune": job.prune},
    )
    return JobOut.of(job)


@router.get("", response_model=JobList, responses=errors(503))
async def recent_jobs(services: ServicesDep, principal: IngesterDep) -> JobList:
    """The most recent jobs, newest first (an ingester's own only); ``queue``: they run on
    the ingestion queue."""
    if services.jobs is None:
        jobs: list[JobView] = []
    elif principal.can(Action.manage):
        jobs = await run_sync(services.jobs.recent)
    else:
        jobs = [
            j for j in await run_sync(services.jobs.recent, OWN_JOBS_SCANNED) if _own(j, principal)
        ]
    return JobList(jobs=[JobOut.of(j) for j in jobs[:20]], queue=bool(services.settings.broker_url))


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses=errors(404, 503),
)
async def get_job(job_id: str, services: ServicesDep, principal: IngesterDep) -> JobOut:
    job = await run_sync(services.jobs.get, job_id) if services.jobs else None
    if job is None or not _own(job, principal):  # another's job reads as an unknown one
        raise APIError(404, "not_found", f"no ingest job {job_id[:80]}")
    return JobOut.of(job)
