"""GET/DELETE /v1/documents: what is ingested, and removing it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Query, UploadFile

from api.deps import ServicesDep
from api.errors import APIError, valid_uuid
from api.native.protocol import (
    DocumentList,
    DocumentOut,
    ErrorResponse,
    JobOut,
    UploadResponse,
)
from api.uploads import save_uploads
from rag.answer.pipeline import run_sync
from rag.store.payloads import DocumentRecord

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("", response_model=DocumentList)
async def list_documents(services: ServicesDep) -> DocumentList:
    documents = await run_sync(services.store.documents.list_documents)
    return DocumentList(documents=[document_out(d) for d in documents], total=len(documents))


@router.post(
    "",
    status_code=202,
    response_model=UploadResponse,
    responses={
        409: {"model": ErrorResponse},
        413: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
        507: {"model": ErrorResponse},
    },
)
async def upload_documents(
    services: ServicesDep,
    files: list[UploadFile] = File(...),
    replace: bool = Query(
        False, description="overwrite a stored file of the same name instead of keeping both"
    ),
) -> UploadResponse:
    """Save files into the inbox (all or none) and queue their ingestion."""
    settings = services.settings
    limit = int(settings.max_upload_mb * 1_000_000)
    saved = await save_uploads(files, settings.inbox, limit, replace=replace)
    job = await run_sync(services.jobs.submit, saved.paths, False) if services.jobs else None
    names = [f.path for f in saved.files]  # relative to the inbox: no server paths out
    return UploadResponse(saved=names, files=saved.files, job=JobOut.of(job) if job else None)


@router.get("/{document_id}", response_model=DocumentOut, responses={404: {"model": ErrorResponse}})
async def get_document(document_id: str, services: ServicesDep) -> DocumentOut:
    record = await run_sync(
        services.store.documents.get_document, valid_uuid(document_id, "document")
    )
    if record is None:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    return document_out(record)


def document_out(record: DocumentRecord) -> DocumentOut:
    return DocumentOut.model_validate(record.to_payload())


@router.delete("/{document_id}", responses={404: {"model": ErrorResponse}})
async def delete_document(document_id: str, services: ServicesDep) -> dict[str, Any]:
    removed = await run_sync(
        services.store.documents.delete_document, valid_uuid(document_id, "document")
    )
    if not removed:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    return {"deleted": document_id}
