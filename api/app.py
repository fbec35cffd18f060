"""The FastAPI application factory and its lifespan (models and store opened once)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp

from api.auth import build_authenticator
from api.deps import Services
from api.errors import install_error_handlers
from api.headers import EXPOSED_HEADERS
from api.mcp.server import RagMCP
from api.observability import BodyLimitMiddleware, Metrics, RequestContextMiddleware
from api.routes import (
    audit,
    documents,
    feedback,
    file_types,
    health,
    ingest,
    me,
    openai,
    parents,
    query,
    search,
)
from api.security import AuthMiddleware, SecurityHeadersMiddleware
from api.uploads import remove_stale_temporaries
from rag import tracing
from rag.answer.llm import LLMClient, LLMConfig
from rag.settings import Settings, load_settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def build_services(settings: Settings) -> Services:
    from ingest.jobs import open_jobs
    from rag.answer.pipeline import RagPipeline
    from rag.wiring import open_index

    index = open_index(settings, questions=True)
    embedder, store = index.embedder, index.store
    llm = LLMClient(LLMConfig.from_settings(settings))
    pipeline = RagPipeline(settings, index.questions, store, llm)
    jobs = open_jobs(settings, embedder, store)
    return Services(settings=settings, pipeline=pipeline, store=store, llm=llm, jobs=jobs)


class ServiceApp(FastAPI):
    """FastAPI with the request context (id, metrics, access log) and the security headers
    around everything, Starlette's error middleware included (FastAPI puts that outermost):
    the id exists before any handler runs and a 500 carries it and the headers too."""

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return RequestContextMiddleware(SecurityHeadersMiddleware(inner), self.state.metrics)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or build_services(settings)
        app.state.services = svc
        if svc.jobs is not None:
            svc.jobs.on_finish = metrics.record_ingest
            metrics.queue.set_function(svc.jobs.queue_depth)
            if svc.jobs.on_queue:
                metrics.watch_queue(svc.jobs.outcomes)
            remove_stale_temporaries(settings.inbox)
            svc.jobs.start()  # what a crashed or stopped process left unfinished
        window = await svc.pipeline.model.refresh()
        log.info(
            "LLM %s at %s: max_model_len=%s", settings.llm_model, settings.llm_base_url, window
        )
        tracing.setup("rag-api", trace_text=settings.trace_text)  # only with OTEL_* set
        try:
            async with mcp.run():  # the MCP session manager's task group
                yield
        finally:
            tracing.shutdown()
            if svc.jobs is not None:
                svc.jobs.shutdown()
            await svc.llm.close()
            if services is None:
                svc.store.close()

    app = ServiceApp(
        title="RAG service",
        version="0.1.0",
        lifespan=lifespan,
        description="Grounded answers over your documents, with citations.",
        # No 307 to the slash variant of a path: its Location would echo the Host header.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    metrics = Metrics()
    app.state.metrics = metrics
    # Keys file, JWKS, trusted proxies: read now, so a bad one stops start-up (one line).
    app.state.authenticator = build_authenticator(settings)
    app.state.readiness = health.ReadinessCache()
    app.state.mcp = mcp = RagMCP(settings.api)
    app.router.routes.append(mcp.route("/mcp"))  # behind AuthMiddleware like /v1 (needs_key)
    for module in (
        search,
        query,
        openai,
        parents,
        documents,
        file_types,
        ingest,
        health,
        audit,
        me,
        feedback,
    ):
        app.include_router(module.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    # Outermost last (inside ServiceApp's request context and security headers): CORS (so
    # 401s carry its headers and preflights are answered), the key check (before any body
    # is read), the body limit.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_request_bytes,
        upload_limit=int(settings.max_upload_mb * 1_000_000) + 64_000,
    )
    app.add_middleware(AuthMiddleware, authenticator=app.state.authenticator)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            # a browser client may read the sources headers (api.headers) and the request id
            expose_headers=list(EXPOSED_HEADERS),
        )
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app
