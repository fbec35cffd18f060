"""The one schema of what is stored in Qdrant: a payload type per collection.

The worker builds these, the store writes and reads them, the API shows them; nothing else
spells payload keys. ``source`` is the absolute path (the document's identity: for the
store, folder filters and logs); users are shown ``display_name`` instead. ``to_payload`` is what Qdrant stores (plain JSON values); ``from_payload``
reads a stored payload back, ignoring keys it does not know (written by a newer version).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from rag.access.acl import AccessList
from rag.documents import display_name

T = TypeVar("T", bound="_Payload")


class _Payload:
    def to_payload(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_payload(cls: type[T], payload: dict[str, Any] | None) -> T:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in (payload or {}).items() if k in known})


class _Stamped:
    """What a parent and a record both carry: a display name and an access list (the
    annotations only type them; each dataclass declares its own fields)."""

    name: str
    source: str
    collection: str
    acl: list[str]

    @property
    def display_name(self) -> str:
        return display_name(self.name, self.source)

    @property
    def access(self) -> AccessList:
        return AccessList.from_payload(self.collection, self.acl)


@dataclass(frozen=True)
class ParentPayload(_Payload, _Stamped):
    """``<c>_parents``: a parent chunk's text and where it sits in its document."""

    document_id: str
    content_hash: str
    source: str
    file_type: str
    title: str
    parent_index: int
    text: str
    start: int
    end: int
    tokens: int
    pages: list[int] = field(default_factory=list)
    heading: str = ""
    name: str = ""  # display name (``rag.documents.display_name``); absent on older points
    collection: str = "default"  # ``rag.access.acl``: the tenant index
    acl: list[str] = field(default_factory=list)  # ``rag.access.acl`` tokens; [] admins only


@dataclass(frozen=True)
class PassagePayload(_Payload):
    """``<c>_passages``: an embedded passage pointing at its parent (``parent_id``)."""

    document_id: str
    content_hash: str
    source: str
    file_type: str
    parent_id: str
    parent_index: int
    passage_index: int
    start: int
    end: int
    folders: list[str] = field(default_factory=list)  # every ancestor folder, for filters
    collection: str = "default"  # ``rag.access.acl``: the tenant index
    acl: list[str] = field(default_factory=list)  # ``rag.access.acl`` tokens; [] admins only


@dataclass(frozen=True)
class DocumentRecord(_Payload, _Stamped):
    """``<c>_documents``: one record per document and the commit marker of its replace
    (``content_hash`` names the version searches may return; None before a first commit)."""

    document_id: str
    content_hash: str | None
    source: str
    file_type: str = ""
    title: str = ""
    size_bytes: int = 0
    pages: int | None = None
    parents: int = 0
    passages: int = 0
    tokens: int = 0
    chars: int = 0
    ingested_at: float | None = None
    state: str = "committed"  # or "replacing" while a replace is under way
    #: pages read by OCR (page number as text) -> mean word confidence, 0-100
    ocr_confidence: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # pages left out, and why
    replacing_since: float | None = None
    name: str = ""  # display name (``rag.documents.display_name``); absent on older records
    collection: str = "default"  # ``rag.access.acl``: the tenant index
    acl: list[str] = field(default_factory=list)  # ``rag.access.acl`` tokens; [] admins only
    #: the principal whose job stored this version (audit, and ingesters' own jobs)
    ingested_by: str = ""

    @property
    def committed(self) -> bool:
        return self.content_hash is not None
