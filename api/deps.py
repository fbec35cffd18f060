"""Typed dependencies: what a route needs, taken from the application state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from ingest.jobs import JobService
from rag.answer.llm import LLMClient
from rag.answer.pipeline import RagPipeline
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore


@dataclass
class Services:
    """Everything the lifespan opens once and closes once."""

    settings: Settings
    pipeline: RagPipeline
    store: QdrantStore
    llm: LLMClient
    jobs: JobService | None
    started_at: float = field(default_factory=time.time)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
