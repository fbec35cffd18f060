"""Request and response models: the public contract of the REST API (see /docs).

Requests are strict: unknown fields are an error, and numbers, booleans and strings must
arrive as such (``"3"`` is not a ``top_k``, ``true`` is not a number). Text lengths are
checked against the settings by the serving layer (``RAG_MAX_QUESTION_CHARS``).

Why one module of ~430 lines: it is the contract, and the models reference one another
(filters, sources, passages, usage, the searched fields, SSE events, jobs, errors); split by
route they would import each other in circles. Logic lives in ``api.native.serving``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from api.uploads import StoredFile
from ingest.jobs import JobView
from rag.access.acl import check_name
from rag.answer.textnorm import has_visible_text
from rag.settings import RetrievalMode

#: What every response's ``source`` is (``rag.documents.display_name``).
SOURCE_DOC = (
    "the document's name: its path relative to the folder it was ingested from (the inbox, "
    "a RAG_INGEST_ROOTS folder, a path given to `python -m ingest`); server paths stay in "
    "the logs"
)
#: An outer bound on request text before the settings' limit is applied.
_TEXT_MAX = 1_000_000


def _visible(value: str) -> str:
    if not has_visible_text(value):
        raise ValueError("must contain visible text")
    return value


class Strict(BaseModel):
    """Unknown fields are an error: a typo in a filter must not silently match everything."""

    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    document_ids: list[StrictStr] = Field(default_factory=list, max_length=1000)
    folders: list[StrictStr] = Field(
        default_factory=list,
        max_length=100,
        description="absolute folder paths; matches files below them",
    )
    file_types: list[StrictStr] = Field(
        default_factory=list,
        max_length=20,
        description="pdf, docx, pptx, html, md, txt, eml, csv, xlsx",
    )
    collection: StrictStr | None = Field(None, description="one collection (tenant)")
    collections: list[StrictStr] = Field(
        default_factory=list, max_length=100, description="only these collections"
    )


Include = Literal["snippet", "passages", "passage_text", "parent_text"]


def _include(*parts: Include) -> Callable[[], list[Include]]:
    """A default ``include`` list (a fresh one per request)."""
    return lambda: list(parts)


_INCLUDE_DOC = (
    "what each result carries besides its ids and scores: 'snippet' (the best "
    "matched passage's text), 'passages' (every matched passage's offsets and "
    "score), 'passage_text' (their text too), 'parent_text' (the whole parent "
    "chunk, thousands of tokens; or fetch one with GET /v1/parents/{parent_id})"
)


class SearchRequest(Strict):
    query: StrictStr = Field(min_length=1, max_length=_TEXT_MAX)
    top_k: StrictInt | None = Field(None, ge=1, le=100)
    filters: Filters | None = None
    mode: RetrievalMode | None = None
    include: list[Include] = Field(
        default_factory=_include("snippet", "passages"), max_length=4, description=_INCLUDE_DOC
    )

    _not_blank = field_validator("query")(_visible)


class PassageOut(BaseModel):
    start: int
    end: int
    score: float
    text: str | None = Field(None, description="with include 'passage_text'")


class ParentFields(BaseModel):
    """A parent chunk's identity and place in its document (offsets in the document)."""

    parent_id: str
    document_id: str
    source: str = Field(description=SOURCE_DOC)
    title: str
    file_type: str
    pages: list[int]
    heading: str
    start: int
    end: int
    tokens: int


class SearchResult(ParentFields):
    text: str | None = Field(None, description="the parent's text, with include 'parent_text'")
    snippet: str | None = Field(
        None, description="the best matched passage's text, with include 'snippet'"
    )
    score: float
    passages: list[PassageOut] = Field(default_factory=list)
    hop: int = Field(1, description="the retrieval hop that found it: 1, or 2 (a follow-up)")
    found_by: str | None = Field(None, description="the follow-up query that found it (hop 2)")


class ParentOut(ParentFields):
    text: str


class SearchResponse(BaseModel):
    results: list[SearchResult]
    timings: dict[str, float]


class HistoryMessage(Strict):
    role: Literal["user", "assistant"]
    content: StrictStr = Field(max_length=_TEXT_MAX)


class QueryRequest(Strict):
    question: StrictStr = Field(min_length=1, max_length=_TEXT_MAX)
    history: list[HistoryMessage] = Field(
        default_factory=list,
        max_length=2000,
        description="earlier turns of the conversation, oldest first (the API keeps no "
        "state: send the thread). Sources of earlier turns are not resent; the oldest whole "
        "turns are dropped when history exceeds its share of the prompt",
    )
    top_k: StrictInt | None = Field(None, ge=1, le=100)
    filters: Filters | None = None
    mode: RetrievalMode | None = None
    max_context_tokens: StrictInt | None = Field(None, ge=1, le=1_000_000)
    max_tokens: StrictInt | None = Field(None, ge=1, description="at most RAG_MAX_TOKENS_LIMIT")
    temperature: StrictFloat = Field(0.0, ge=0.0, le=2.0)
    stream: StrictBool = False
    include: list[Include] = Field(
        default_factory=_include("passages"),
        max_length=4,
        description="besides the text each source showed the model: " + _INCLUDE_DOC,
    )

    _not_blank = field_validator("question")(_visible)


class CitationOut(BaseModel):
    n: int
    document_id: str
    parent_id: str
    source: str = Field(description=SOURCE_DOC)
    title: str
    pages: list[int]
    quote: str
    quote_start: int
    quote_end: int
    kind: str = Field(
        "model",
        description="'model' ([n] in the answer) or 'attributed' "
        "(no [n] in the answer; matched by word overlap)",
    )


class SourceOut(BaseModel):
    n: int
    document_id: str
    parent_id: str
    source: str = Field(description=SOURCE_DOC)
    title: str
    file_type: str
    pages: list[int]
    text: str
    start: int
    truncated: bool
    parent_text: str | None = Field(
        None,
        description="the whole parent when the model saw "
        "excerpts of it, with include 'parent_text'",
    )
    rank: int
    score: float
    cited: bool
    attributed: bool = False
    passages: list[PassageOut] = Field(default_factory=list)
    hop: int = Field(1, description="the retrieval hop that found it: 1, or 2 (a follow-up)")
    found_by: str | None = Field(None, description="the follow-up query that found it (hop 2)")


class UsageOut(BaseModel):
    prompt_tokens: int = Field(description="exact count of the chat-templated prompt")
    context_tokens: int = Field(description="the part of the prompt the sources take")
    context_window: int
    headroom_tokens: int = Field(description="max_tokens + margin, never given to sources")
    max_tokens: int
    margin_tokens: int
    prompt_tokens_server: int | None = Field(None, description="what the LLM server counted")
    completion_tokens: int = 0
    history_tokens: int = Field(0, description="what the kept earlier turns add to the prompt")
    history_turns_kept: int = 0
    history_turns_dropped: int = Field(0, description="oldest turns left out to fit")


#: Where ``search_query`` came from (``rag.answer.rewrite.SearchQuery.source``).
SearchQuerySource = Literal["question", "rewritten", "fallback"]


class Searched(BaseModel):
    """What retrieval searched for (``rag.answer.rewrite.SearchQuery``): on every answer,
    its first stream event, and the OpenAI route's first chunk."""

    search_query: str = Field(description="what retrieval searched for")
    search_query_source: SearchQuerySource = Field(
        description="'question' (no history), 'rewritten' by the LLM from the conversation, "
        "or 'fallback' (recent user questions joined: rewriting off, the LLM failed or "
        "answered junk)"
    )
    search_query_note: str | None = Field(
        None,
        description="why the fallback was searched: 'rewriting is off', 'unusable "
        "rewrite', or the LLM's error code (e.g. 'llm_timeout')",
    )
    follow_up_queries: list[str] = Field(
        default_factory=list,
        description="the second hop's searches (rag.answer.hops); a source they found has "
        "hop 2 and found_by",
    )
    follow_ups_by: Literal["llm", "deterministic"] | None = Field(
        None,
        description="who planned them: the LLM (RAG_HOP_DECOMPOSE) or the deterministic "
        "hop; null when hops are off or nothing matched",
    )
    follow_ups_note: str | None = Field(
        None,
        description="why the deterministic follow-ups stood in: 'decomposition is off', "
        "'unusable proposal', or the LLM's error code",
    )


class QueryResponse(Searched):
    answer: str
    citations: list[CitationOut]
    invalid_citations: list[int] = Field(description="[n] naming no source")
    unsupported_citations: list[int] = Field(
        default_factory=list,
        description="[n] whose source does not state the sentence; dropped from citations",
    )
    reason: str | None = Field(
        None,
        description="why no answer was generated: "
        "'no_matching_documents' (nothing matched) or 'no_room_for_sources' (the "
        "context budget left room for no source); the LLM was not called",
    )
    sources: list[SourceOut]
    usage: UsageOut
    timings: dict[str, float]
    model: str
    finish_reason: str | None = None


class SourcesEventOut(Searched):
    """SSE ``sources`` (``stream``: the first event): what the model is shown, before the
    answer streams, and what was searched (``Searched``)."""

    sources: list[SourceOut]
    usage: UsageOut
    timings: dict[str, float]
    model: str


class DeltaEventOut(BaseModel):
    """SSE ``delta``: the next piece of the answer's text (``final`` has it whole)."""

    text: str


class DocumentOut(BaseModel):
    """A stored document (``rag.store.payloads.DocumentRecord`` without its replace bookkeeping)."""

    model_config = ConfigDict(extra="ignore")
    document_id: str
    content_hash: str
    source: str = Field(description=SOURCE_DOC)
    title: str
    file_type: str
    pages: int | None = None
    size_bytes: int = 0
    parents: int = 0
    passages: int = 0
    tokens: int = 0
    chars: int = 0
    ingested_at: float | None = None
    ocr_confidence: dict[str, float] = Field(
        default_factory=dict, description="pages read by OCR -> mean word confidence (0-100)"
    )
    collection: str = Field("default", description="its collection (tenant)")
    groups: list[str] = Field(default_factory=list, description="groups that may read it")
    users: list[str] = Field(default_factory=list, description="users that may read it")
    ingested_by: str = Field("", description="the principal whose job stored this version")
    warnings: list[str] = Field(
        default_factory=list, description="pages left out (blank, low OCR confidence)"
    )


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int


def _names(kind: str, values: list[str] | None) -> list[str] | None:
    return None if values is None else [check_name(kind, v) for v in values if v.strip()]


class AccessFields(Strict):
    """A document's access as requests give it (``rag.access.acl``; names of letters,
    digits and ``_.@+-``): a field left out is not given (``ingest.files.access``)."""

    collection: StrictStr | None = Field(None, description="the documents' collection")
    groups: list[StrictStr] | None = Field(
        None, max_length=100, description="groups that may read them ([]: none)"
    )
    users: list[StrictStr] | None = Field(
        None, max_length=100, description="users that may read them ([]: none)"
    )

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str | None) -> str | None:
        return None if value is None else check_name("collection", value)

    @field_validator("groups")
    @classmethod
    def _groups(cls, values: list[str] | None) -> list[str] | None:
        return _names("group", values)

    @field_validator("users")
    @classmethod
    def _users(cls, values: list[str] | None) -> list[str] | None:
        return _names("user", values)


class AccessPatch(AccessFields):
    """``PATCH /v1/documents/{id}``: the fields given replace the document's; the others
    are kept."""


class FileTypesResponse(BaseModel):
    """The file types ingestion reads (``ingest.parsing.formats``)."""

    file_types: list[str] = Field(
        description="each file type once, in the order the page offers them"
    )
    extensions: dict[str, str] = Field(description="file extension (with its dot) -> file type")


class IngestRequest(AccessFields):
    paths: list[StrictStr] = Field(
        min_length=1,
        max_length=1000,
        description="absolute paths below the inbox or RAG_INGEST_ROOTS",
    )
    prune: StrictBool = False

    @field_validator("paths")
    @classmethod
    def _plain_absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path or len(path) > 4096:
                raise ValueError("each path must be 1 to 4096 characters")
            if any(unicodedata.category(c) == "Cc" for c in path):
                raise ValueError("paths must not contain control characters (NUL included)")
            if not path.startswith("/"):
                raise ValueError(f"{path[:100]!r} is not an absolute path")
        return paths


class JobOut(JobView):
    """An ingestion job, one shape whether it runs in the API process or on the queue
    (``ingest.jobs.JobView``)."""

    @classmethod
    def of(cls, job: JobView) -> JobOut:
        return cls.model_validate(job.model_dump())


class JobList(BaseModel):
    jobs: list[JobOut] = Field(description="the most recent jobs, newest first")
    queue: bool = Field(description="jobs run on the ingestion queue (RAG_BROKER_URL)")


class UploadResponse(BaseModel):
    saved: list[str] = Field(description="stored names in the inbox, in request order")
    files: list[StoredFile]
    job: JobOut | None = Field(None, description="the ingestion job of these files")


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, dict[str, Any]]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
