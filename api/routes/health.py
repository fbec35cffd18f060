"""GET /healthz (the process is alive) and GET /readyz (each dependency reported).

Public, so they say only what a load balancer needs: ready or not, and which dependency is
down. Details (models, window, passage count) only for a caller with a valid key; URLs and
error texts never (they are in the log).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.native.protocol import Readiness
from api.security import key_ok
from rag.answer.pipeline import run_sync

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep, request: Request) -> JSONResponse:
    """Ready for search when store and embedder work; the LLM is reported on its own."""
    details = key_ok(request.headers.get("authorization"), request.app.state.api_keys)
    checks: dict[str, dict[str, object]] = {}
    try:
        passages = await run_sync(services.store.count_passages)
        checks["store"] = {"ok": True, **({"passages": passages} if details else {})}
    except Exception as exc:
        log.error("readiness: store check failed: %s", exc)
        checks["store"] = {"ok": False}
    embedder = services.pipeline.embedder
    checks["embedder"] = {
        "ok": True,
        **({"model": embedder.name, "dimension": embedder.dimension} if details else {}),
    }
    window = await services.pipeline.refresh_window()
    checks["llm"] = {
        "ok": window is not None,
        **({"model": services.settings.llm_model, "max_model_len": window} if details else {}),
    }
    ready = bool(checks["store"]["ok"] and checks["embedder"]["ok"])
    body = Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
