"""A parsed, chunked and embedded document as the store keeps it: its parent points, its
passage points (dense and sparse vectors) and its record (the commit marker of a replace).

Point ids derive from the document id, the content hash and the positions, so the same
input always maps to the same points: a crashed run repeated overwrites, never duplicates.

A document's ``name`` (what users and the LLM see, ``name_under``) is its path relative to
the root it was ingested from; its ``source``, the absolute path, never leaves the server
but in logs and ingestion reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from rag.documents import Parent, ParsedDocument, parent_point_id, passage_point_id
from rag.embedding.sparse import BM25Encoder
from rag.store.documents import ParentPoint, PassagePoint
from rag.store.payloads import DocumentRecord, ParentPayload, PassagePayload
from rag.store.search import folders_of


@dataclass(frozen=True)
class DocumentPoints:
    record: DocumentRecord
    parents: list[ParentPoint]
    passages: list[PassagePoint]


def name_under(source: str, roots: Iterable[str]) -> str:
    """``source`` relative to the deepest of ``roots`` holding it ("mail/update.eml"); its
    file name when a root is the file itself or none holds it."""
    path = PurePosixPath(source)
    holding = [PurePosixPath(r) for r in roots if path.is_relative_to(r)]
    if not holding:
        return path.name
    relative = path.relative_to(max(holding, key=lambda r: len(r.parts)))
    return str(relative) if relative.parts else path.name


def document_points(
    doc: ParsedDocument,
    parents: list[Parent],
    vectors: np.ndarray,
    sparse: BM25Encoder,
    access: dict[str, Any] | None = None,
    owner: str = "",
) -> DocumentPoints:
    """``vectors``: one dense vector per passage, in the order of ``parents``' passages.
    ``access``: the ``{collection, acl}`` payload (``AccessList.to_payload``) stamped on
    every parent, passage and the record (default: the default collection and policy);
    ``owner``: the principal whose job stores it (the record's ``ingested_by``)."""
    doc_id, digest = doc.id, doc.content_hash
    stamp = access if access is not None else {"collection": "default", "acl": ["default"]}
    collection, acl = str(stamp["collection"]), list(stamp["acl"])
    parent_points: list[ParentPoint] = []
    passage_points: list[PassagePoint] = []
    folders = folders_of(doc.source)
    v = 0
    for parent in parents:
        pid = parent_point_id(doc_id, digest, parent.index)
        parent_points.append(
            ParentPoint(
                pid,
                ParentPayload(
                    document_id=doc_id,
                    content_hash=digest,
                    source=doc.source,
                    file_type=doc.file_type,
                    title=doc.title,
                    parent_index=parent.index,
                    text=parent.text,
                    start=parent.start,
                    end=parent.end,
                    tokens=parent.tokens,
                    pages=parent.pages,
                    heading=parent.heading,
                    name=doc.name,
                    collection=collection,
                    acl=list(acl),
                ),
            )
        )
        for passage in parent.passages:
            passage_points.append(
                PassagePoint(
                    passage_point_id(doc_id, digest, parent.index, passage.index),
                    dense=[float(x) for x in vectors[v]],
                    sparse=sparse.encode_document(passage.text),
                    payload=PassagePayload(
                        document_id=doc_id,
                        content_hash=digest,
                        source=doc.source,
                        file_type=doc.file_type,
                        parent_id=pid,
                        parent_index=parent.index,
                        passage_index=passage.index,
                        start=passage.start,
                        end=passage.end,
                        folders=folders,
                        collection=collection,
                        acl=list(acl),
                    ),
                )
            )
            v += 1
    record = DocumentRecord(
        document_id=doc_id,
        content_hash=digest,
        source=doc.source,
        file_type=doc.file_type,
        title=doc.title,
        size_bytes=doc.size_bytes,
        pages=doc.pages,
        parents=len(parent_points),
        passages=len(passage_points),
        tokens=sum(p.tokens for p in parents),
        chars=len(doc.text),
        ocr_confidence={str(k): c for k, c in doc.ocr_confidence.items()},
        warnings=list(doc.warnings),
        name=doc.name,
        collection=collection,
        acl=list(acl),
        ingested_by=owner,
    )
    return DocumentPoints(record, parent_points, passage_points)
