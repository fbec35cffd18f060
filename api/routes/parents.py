"""GET /v1/parents/{parent_id}: one parent chunk's text (search results leave it out)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReaderDep, ScopeDep, ServicesDep
from api.errors import APIError, valid_uuid
from api.native.protocol import ParentOut
from api.routes.responses import errors
from rag.answer.pipeline import run_sync

router = APIRouter(prefix="/v1/parents", tags=["search"])


@router.get(
    "/{parent_id}",
    response_model=ParentOut,
    responses=errors(404, 422),
)
async def get_parent(
    parent_id: str, services: ServicesDep, scope: ScopeDep, principal: ReaderDep
) -> ParentOut:
    key = valid_uuid(parent_id, "parent")
    parent = await run_sync(services.store.search.parent, key, scope)
    if parent is None:
        raise APIError(404, "not_found", f"no parent with id {key}")
    return ParentOut.model_validate(
        {**parent.to_payload(), "parent_id": key, "source": parent.display_name}
    )
