"""GET/DELETE /v1/documents: what is ingested, and removing it (for good: a deleted
upload's inbox copy goes too, an operator's file is tombstoned; ``ingest.erasure``);
POST: uploads (with their access fields); PATCH: a document's access (admins)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from api import audit
from api.deps import AdminDep, IngesterDep, ReaderDep, ScopeDep, ServicesDep
from api.errors import APIError, valid_uuid
from api.native.protocol import (
    AccessPatch,
    DocumentList,
    DocumentOut,
    JobOut,
    UploadResponse,
)
from api.routes.ingest import job_access
from api.routes.responses import errors
from api.uploads import restate_unstored, save_uploads
from ingest.erasure import Tombstones, erase, source_of
from rag.access import AccessError, AccessList, Principal
from rag.access.acl import check_name
from rag.answer.pipeline import run_sync
from rag.documents import document_id as document_id_of
from rag.store.payloads import DocumentRecord

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("", response_model=DocumentList)
async def list_documents(
    request: Request,
    services: ServicesDep,
    scope: ScopeDep,
    principal: ReaderDep,
    collection: list[str] = Query(
        default_factory=list, max_length=100, description="only these collections"
    ),
) -> DocumentList:
    scope = scope.narrowed(tuple(collection))
    documents = await run_sync(services.store.documents.list_documents, scope)
    audit.record(
        request,
        principal,
        "documents.list",
        scope=scope,
        documents=[d.document_id for d in documents],
    )
    return DocumentList(documents=[document_out(d) for d in documents], total=len(documents))


@router.post(
    "",
    status_code=202,
    response_model=UploadResponse,
    responses=errors(403, 409, 413, 422, 503, 507),
)
async def upload_documents(
    request: Request,
    services: ServicesDep,
    principal: IngesterDep,
    files: list[UploadFile] = File(...),
    replace: bool = Query(
        False, description="overwrite a stored file of the same name instead of keeping both"
    ),
    collection: Annotated[str | None, Form(description="the documents' collection")] = None,
    groups: Annotated[list[str] | None, Form(description="groups that may read them")] = None,
    users: Annotated[list[str] | None, Form(description="users that may read them")] = None,
    collection_q: Annotated[str | None, Query(alias="collection")] = None,
    groups_q: Annotated[list[str] | None, Query(alias="groups")] = None,
    users_q: Annotated[list[str] | None, Query(alias="users")] = None,
) -> UploadResponse:
    """Save files into the inbox (all or none) and queue their ingestion. An admin's go to
    the inbox itself; anyone else's to their own folder of it (``upload_folder``), so that
    a name is taken (``renamed``, ``unchanged``, ``replace``) only by their own uploads:
    an upload never tells whether someone else stored a file of that name."""
    access = job_access(  # a form field wins over the query parameter; 403 before saving
        principal,
        collection if collection is not None else collection_q,
        groups if groups is not None else groups_q,
        users if users is not None else users_q,
    )
    settings = services.settings
    limit = int(settings.max_upload_mb * 1_000_000)
    folder = upload_folder(settings.inbox, principal)
    saved = await save_uploads(files, folder, limit, replace=replace)
    saved = await run_sync(restate_unstored, saved, lambda path: _is_stored(services, path))
    await run_sync(Tombstones(settings.inbox).readmit, saved.paths)  # uploaded on purpose
    job = (
        await run_sync(services.jobs.submit, saved.paths, False, "request", principal.name, access)
        if services.jobs
        else None
    )
    prefix = "" if folder == settings.inbox else f"{folder.relative_to(settings.inbox)}/"
    for item in saved.files:  # relative to the inbox: no server paths out
        item.path = prefix + item.path
    names = [f.path for f in saved.files]
    audit.record(
        request,
        principal,
        "upload",
        documents=[document_id_of(source_of(p)) for p in saved.paths],
        after={"files": [f.model_dump() for f in saved.files], "job": job.job_id if job else None},
    )
    return UploadResponse(saved=names, files=saved.files, job=JobOut.of(job) if job else None)


@router.get("/{document_id}", response_model=DocumentOut, responses=errors(404))
async def get_document(
    document_id: str,
    request: Request,
    services: ServicesDep,
    scope: ScopeDep,
    principal: ReaderDep,
) -> DocumentOut:
    record = await run_sync(
        services.store.documents.get_document, valid_uuid(document_id, "document"), scope
    )
    audit.record(
        request,
        principal,
        "document.get",
        scope=scope,
        documents=[record.document_id] if record else [],
        asked=document_id[:80],
    )
    if record is None:  # the same answer whether it does not exist or may not be read
        raise APIError(404, "not_found", f"no document with id {document_id}")
    return document_out(record)


def document_out(record: DocumentRecord) -> DocumentOut:
    return DocumentOut.model_validate(
        {**record.to_payload(), **record.access.describe(), "source": record.display_name}
    )


#: The inbox folder of uploads by principals other than admins (one folder each).
USERS_FOLDER = "users"


def upload_folder(inbox: Path, principal: Principal) -> Path:
    """Where ``principal``'s uploads go: the inbox for an admin, else
    ``<inbox>/users/<name>`` (a name unfit for a path: its sha256, cut)."""
    if principal.is_admin:
        return inbox
    try:
        name = check_name("user", principal.name)
    except AccessError:
        name = "u-" + hashlib.sha256(principal.name.encode()).hexdigest()[:32]
    return inbox / USERS_FOLDER / name


def _is_stored(services: ServicesDep, path: str) -> bool:
    return services.store.documents.get_document(document_id_of(source_of(path))) is not None


@router.delete("/{document_id}", responses=errors(404))
async def delete_document(
    document_id: str, request: Request, services: ServicesDep, principal: AdminDep
) -> dict[str, Any]:
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
    audit.record(
        request,
        principal,
        "document.delete",
        collections=[record.collection],
        documents=[doc_id],
        before=audit_view(record),
        after={
            "deleted": True,
            "removed": ["points", "parents", "record", "cached parent text"],
            "file_removed": erased.file_removed,
            "tombstone": erased.tombstone,
        },
    )
    return {
        "deleted": document_id,
        "file_removed": erased.file_removed,
        "tombstone": erased.tombstone,
    }


def audit_view(record: DocumentRecord) -> dict[str, Any]:
    """What an audit line keeps of a record (no text)."""
    payload = record.to_payload()
    keep = ("source", "title", "file_type", "content_hash", "collection", "acl", "ingested_by")
    return {k: payload[k] for k in keep if k in payload}


@router.patch(
    "/{document_id}",
    response_model=DocumentOut,
    responses=errors(403, 404, 422),
)
async def patch_document_access(
    document_id: str,
    body: AccessPatch,
    request: Request,
    services: ServicesDep,
    principal: AdminDep,
) -> DocumentOut:
    """Change a document's collection and access list in place (admins only): the fields
    given replace its own, the others are kept. No re-embedding; searches see the old list
    or the new one at every moment, never neither (``DocumentStore.set_access``)."""
    doc_id = valid_uuid(document_id, "document")
    documents = services.store.documents
    record = await run_sync(documents.get_document, doc_id)
    if record is None:
        raise APIError(404, "not_found", f"no document with id {document_id}")
    current = record.access
    try:
        access = AccessList.of(
            body.collection if body.collection is not None else current.collection,
            body.groups if body.groups is not None else current.groups,
            body.users if body.users is not None else current.users,
        )
    except AccessError as exc:
        raise APIError(422, "invalid_request", str(exc)) from exc
    updated = await run_sync(documents.set_access, doc_id, access)
    if updated is None:  # deleted meanwhile
        raise APIError(404, "not_found", f"no document with id {document_id}")
    audit.record(
        request,
        principal,
        "document.access",
        collections=sorted({record.collection, updated.collection}),
        documents=[doc_id],
        before=audit_view(record),
        after=audit_view(updated),
    )
    return document_out(updated)
