"""Request and response models: the public contract of the REST API (see /docs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.settings import RetrievalMode


class Strict(BaseModel):
    """Unknown fields are an error: a typo in a filter must not silently match everything."""

    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    document_ids: list[str] = Field(default_factory=list, max_length=1000)
    folders: list[str] = Field(default_factory=list, max_length=100,
                               description="absolute folder paths; matches files below them")
    file_types: list[str] = Field(default_factory=list, max_length=20,
                                  description="pdf, docx, pptx, html, md, txt, eml, csv, xlsx")


class SearchRequest(Strict):
    query: str = Field(min_length=1, max_length=8000)
    top_k: int | None = Field(None, ge=1, le=100)
    filters: Filters | None = None
    mode: RetrievalMode | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class PassageOut(BaseModel):
    start: int
    end: int
    score: float
    text: str


class SearchResult(BaseModel):
    parent_id: str
    document_id: str
    source: str
    title: str
    file_type: str
    pages: list[int]
    heading: str
    text: str
    start: int
    end: int
    tokens: int
    score: float
    passages: list[PassageOut]


class SearchResponse(BaseModel):
    results: list[SearchResult]
    timings: dict[str, float]


class QueryRequest(Strict):
    question: str = Field(min_length=1, max_length=8000)
    top_k: int | None = Field(None, ge=1, le=100)
    filters: Filters | None = None
    mode: RetrievalMode | None = None
    max_context_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_tokens: int | None = Field(None, ge=1, le=131_072)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    stream: bool = False

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class CitationOut(BaseModel):
    n: int
    document_id: str
    parent_id: str
    source: str
    title: str
    pages: list[int]
    quote: str
    quote_start: int
    quote_end: int
    kind: str = Field("model", description="'model' ([n] in the answer) or 'attributed' "
                      "(no [n] in the answer; matched by word overlap)")


class SourceOut(BaseModel):
    n: int
    document_id: str
    parent_id: str
    source: str
    title: str
    file_type: str
    pages: list[int]
    text: str
    start: int
    truncated: bool
    parent_text: str | None = None  # the whole parent, when the model saw excerpts of it
    rank: int
    score: float
    cited: bool
    attributed: bool = False
    passages: list[PassageOut]


class QueryResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    invalid_citations: list[int]
    sources: list[SourceOut]
    usage: dict[str, Any]
    timings: dict[str, float]
    model: str
    finish_reason: str | None = None


class DocumentOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    document_id: str
    source: str
    title: str
    file_type: str
    pages: int | None = None
    size_bytes: int = 0
    parents: int = 0
    passages: int = 0
    tokens: int = 0
    ingested_at: float | None = None


class DocumentList(BaseModel):
    documents: list[DocumentOut]
    total: int


class IngestRequest(Strict):
    paths: list[str] = Field(min_length=1, max_length=1000)
    prune: bool = False


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
