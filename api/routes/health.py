"""GET /healthz (the process is alive) and GET /readyz (each dependency reported)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from rag.pipeline import run_sync

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready for search when store and embedder work; the LLM is reported on its own."""
    checks: dict[str, Any] = {}
    try:
        checks["store"] = {"ok": True, "passages": await run_sync(services.store.count_passages)}
    except Exception as exc:
        checks["store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    embedder = services.pipeline.embedder
    checks["embedder"] = {"ok": True, "model": embedder.name, "dimension": embedder.dimension}
    window = await services.pipeline.refresh_window()
    checks["llm"] = {"ok": window is not None, "model": services.settings.llm_model,
                     "base_url": services.settings.llm_base_url, "max_model_len": window}
    if window is None:
        checks["llm"]["error"] = "LLM server is not reachable or does not serve this model"
    ready = checks["store"]["ok"] and checks["embedder"]["ok"]
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
