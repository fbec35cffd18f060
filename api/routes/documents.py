"""GET/DELETE /v1/documents: what is ingested, and removing it (for good: a deleted
upload's inbox copy goes too, an operator's file is tombstoned; ``ingest.erasure``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Query, UploadFile

from api.deps import ScopeDep, ServicesDep
from api.errors import APIError, valid_uuid
from api.native.protocol import (
    DocumentList,
    DocumentOut,
    ErrorResponse,
    JobOut,
    UploadResponse,
)
from api.uploads import restate_unstored, save_uploads
from ingest.erasure import Tombstones, erase, source_of
from rag.answer.pipeline import run_sync
from rag.documents import document_id as document_id_of
from rag.store.payloads import DocumentRecord

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("", response_model=DocumentList)
async def list_documents(services: ServicesDep, scope: ScopeDep) -> DocumentList:
    documents = await run_sync(services.store.documents.list_documents, scope)
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
    saved = await run_sync(restate_unstored, saved, lambda path: _is_stored(services, path))
    await run_sync(Tombstones(settings.inbox).readmit, saved.paths)  # uploaded on purpose
    job = await run_sync(services.jobs.submit, saved.paths, False) if services.jobs else None
    names = [f.path for f in saved.files]  # relative to the inbox: no server paths out
    return UploadResponse(saved=names, files=saved.files, job=JobOut.of(job) if job else None)


@router.get("/{document_id}", response_model=DocumentOut, responses={404: {"model": ErrorResponse}})
async def get_document(document_id: str, services: ServicesDep, scope: ScopeDep) -> DocumentOut:
    record = await run_sync(
        services.store.documents.get_document, valid_uuid(document_id, "document"), scope
    )
    if record is None:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    return document_out(record)


def document_out(record: DocumentRecord) -> DocumentOut:
    return DocumentOut.model_validate({**record.to_payload(), "source": record.display_name})


def _is_stored(services: ServicesDep, path: str) -> bool:
    return services.store.documents.get_document(document_id_of(source_of(path))) is not None


@router.delete("/{document_id}", responses={404: {"model": ErrorResponse}})
async def delete_document(document_id: str, services: ServicesDep) -> dict[str, Any]:
    """Its points, and what would bring it back: the inbox copy of an upload is deleted,
    a file under RAG_INGEST_ROOTS is tombstoned (skipped by folder walks until it changes
    or is named on purpose)."""
    doc_id = valid_uuid(document_id, "document")
    documents = services.store.documents
    record = await run_sync(documents.get_document, doc_id)
    if record is None:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    removed, erased = await run_sync(
        erase, record.source, doc_id, documents.delete_document, services.settings.inbox
    )
    if not removed:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    return {
        "deleted": document_id,
        "file_removed": erased.file_removed,
        "tombstone": erased.tombstone,
    }
