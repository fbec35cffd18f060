"""GET /v1/file-types: the file types ingestion reads (the page's file-type filter).

From ``ingest.parsing.formats``, the list the parser and the upload checks use; each
extension's partitioner stays inside ingestion.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReaderDep
from api.native.protocol import FileTypesResponse
from ingest.parsing.formats import FILE_TYPES, SUPPORTED

router = APIRouter(prefix="/v1/file-types", tags=["documents"])

_FILE_TYPES = FileTypesResponse(
    file_types=list(FILE_TYPES),
    extensions={suffix: file_type for suffix, (file_type, _) in SUPPORTED.items()},
)


@router.get("", response_model=FileTypesResponse)
async def file_types(principal: ReaderDep) -> FileTypesResponse:
    return _FILE_TYPES
