"""Typed dependencies: what a route needs, taken from the application state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.jobs import JobManager
from rag.generation import LLMClient
from rag.pipeline import RagPipeline
from rag.settings import Settings
from rag.store import QdrantStore


@dataclass
class Services:
    """Everything the lifespan opens once and closes once."""

    settings: Settings
    pipeline: RagPipeline
    store: QdrantStore
    llm: LLMClient
    jobs: JobManager | None


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
