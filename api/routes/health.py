"""GET /healthz (the process is alive) and GET /readyz (each dependency reported).

Public, so they say only what a load balancer needs: ready or not, and which dependency is
down. Details (models, window, passage count) only for a caller with a valid key; URLs and
error texts never (they are in the log). The checks behind /readyz (a passage count, two
calls to the LLM server) run at most once per ``READY_CACHE_S`` whoever asks and however
often: a public endpoint must not let anyone drive upstream calls or store scans.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import PRINCIPAL_KEY, Services, ServicesDep
from api.native.protocol import Readiness
from rag.access import Principal
from rag.answer.pipeline import run_sync

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

#: How long one run of the readiness checks answers /readyz (seconds).
READY_CACHE_S = 5.0

#: What only a caller with a key sees, per check.
_DETAILS = {
    "store": ("passages",),
    "embedder": ("model", "dimension"),
    "llm": ("model", "max_model_len"),
}

Checks = dict[str, dict[str, Any]]


class ReadinessCache:
    """The last run of the checks, reused for ``ttl_s``; callers that arrive while a run is
    under way wait for that run instead of starting their own (one per app: ``app.state``)."""

    def __init__(self, ttl_s: float = READY_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self.run: asyncio.Task[Checks] | None = None
        self.started = 0.0

    async def checks(self, services: Services) -> Checks:
        now = time.monotonic()
        if self.run is None or (self.run.done() and now - self.started >= self.ttl_s):
            self.run, self.started = asyncio.ensure_future(_check(services)), now
        # shielded: a caller that goes away does not cancel the run the others wait for
        return await asyncio.shield(self.run)


async def _check(services: Services) -> Checks:
    checks: Checks = {}
    try:
        passages = await run_sync(services.store.documents.count_passages)
        checks["store"] = {"ok": True, "passages": passages}
    except Exception as exc:
        log.error("readiness: store check failed: %s", exc)
        checks["store"] = {"ok": False}
    embedder = services.pipeline.retriever.embedder
    checks["embedder"] = {"ok": True, "model": embedder.name, "dimension": embedder.dimension}
    try:
        window = await services.pipeline.model.refresh()
    except Exception as exc:  # reported as down, never a failed readiness probe
        log.error("readiness: LLM check failed: %s", exc)
        window = None
    checks["llm"] = {
        "ok": window is not None,
        "model": services.settings.llm_model,
        "max_model_len": window,
    }
    return checks


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep, request: Request) -> JSONResponse:
    """Ready for search when store and embedder work; the LLM is reported on its own."""
    cache: ReadinessCache = request.app.state.readiness
    checks = await cache.checks(services)
    # the details are for a principal (any; the local admin when no authentication is set)
    if not isinstance(request.scope.get("state", {}).get(PRINCIPAL_KEY), Principal):
        checks = {
            name: {k: v for k, v in check.items() if k not in _DETAILS[name]}
            for name, check in checks.items()
        }
    ready = bool(checks["store"]["ok"] and checks["embedder"]["ok"])
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
