"""GET /v1/me: who the request runs as, and what that principal may do (the page hides the
controls a role may not use; the API still checks every route itself)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import PrincipalDep
from api.routes.responses import errors
from rag.access import Action

router = APIRouter(prefix="/v1", tags=["access"])


class Abilities(BaseModel):
    read: bool
    ingest: bool
    manage: bool


class Me(BaseModel):
    name: str
    role: str
    groups: list[str]
    #: how the principal was established: key, jwt, proxy or local
    source: str
    can: Abilities


@router.get("/me", response_model=Me, responses=errors(401))
async def me(principal: PrincipalDep) -> Me:
    return Me(
        name=principal.name,
        role=principal.role.value,
        groups=sorted(principal.groups),
        source=principal.source,
        can=Abilities(
            read=principal.can(Action.read),
            ingest=principal.can(Action.ingest),
            manage=principal.can(Action.manage),
        ),
    )
