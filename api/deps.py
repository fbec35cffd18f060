"""Typed dependencies: what a route needs, taken from the application state and from the
principal the authentication middleware (``api.security``) attached to the request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.errors import APIError
from ingest.jobs import JobService
from rag.access import Action, Principal, ReadScope
from rag.answer.llm import LLMClient
from rag.answer.pipeline import RagPipeline
from rag.settings import AccessSettings, DefaultAccess, Settings
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

#: Where the authentication middleware leaves the request's principal (ASGI scope state).
PRINCIPAL_KEY = "principal"


def get_principal(request: Request) -> Principal:
    """The principal the middleware established (the local admin when no authentication
    is configured). A request that reached a route without one (a path the middleware lets
    through unauthenticated) is refused with 401."""
    principal = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    if isinstance(principal, Principal):
        return principal
    raise APIError(401, "unauthorized", "missing or invalid credentials")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def read_scope(principal: Principal, access: AccessSettings) -> ReadScope:
    """What ``principal`` may read under the configured default policy."""
    return ReadScope.of(
        principal, default_is_everyone=access.default_access is DefaultAccess.everyone
    )


def get_scope(principal: PrincipalDep, services: ServicesDep) -> ReadScope:
    return read_scope(principal, services.settings.access)


ScopeDep = Annotated[ReadScope, Depends(get_scope)]


def require(action: Action) -> Callable[[Principal], Principal]:
    """A dependency that answers 403 unless the principal's role allows ``action``."""

    def check(principal: PrincipalDep) -> Principal:
        if not principal.can(action):
            raise APIError(
                403,
                "forbidden",
                f"the {principal.role.value} role may not {action.value} "
                f"(signed in as {principal.name})",
            )
        return principal

    return check


ReaderDep = Annotated[Principal, Depends(require(Action.read))]
IngesterDep = Annotated[Principal, Depends(require(Action.ingest))]
AdminDep = Annotated[Principal, Depends(require(Action.manage))]
