"""One settings model for every process (API, worker, benchmarks).

Values come, highest priority first, from constructor arguments, ``RAG_*`` environment
variables, a ``.env`` file, and a TOML profile in ``configs/`` named by ``RAG_CONFIG_FILE``.
Keeping one model (rather than one per process) means the API and the worker can never
disagree about chunk sizes or the embedding model that a collection was built with.

The knobs are grouped by the component that reads them (``StoreSettings``,
``EmbeddingSettings``, ``LLMSettings``...). ``Settings`` inherits every group, so env names
stay flat (``RAG_QDRANT_URL``, not ``RAG_STORE__QDRANT_URL``) while each component's
signature names the one group it reads.

Over 350 lines on purpose: it is the service's one table of knobs (about a hundred fields,
each with its bound and description); splitting it would scatter that table.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: The embedding model prepared offline by ``scripts/prepare_models.py`` (bge-small int8 ONNX).
BUNDLED_BGE = "bge-small-en-v1.5-int8"


class RetrievalMode(str, Enum):
    hybrid = "hybrid"
    dense = "dense"
    sparse = "sparse"


class Fusion(str, Enum):
    rrf = "rrf"
    dbsf = "dbsf"


def default_model_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rag-service" / "models"


class PathSettings(BaseModel):
    """Where the service keeps its files."""

    data_dir: Path = Path("./data")
    model_dir: Path = Field(default_factory=default_model_dir)


class StoreSettings(PathSettings):
    """The Qdrant store: engine, collections, replicas, crash repair."""

    qdrant_url: str | None = None
    embedded_engine: Literal["edge", "python"] = Field(
        "edge",
        description="Engine without RAG_QDRANT_URL: Qdrant Edge (Rust, in-process) or "
        "qdrant-client's pure-Python local mode",
    )
    qdrant_api_key: SecretStr | None = None
    collection: str = "rag"
    qdrant_shards: int = Field(1, ge=1)
    qdrant_replicas: int = Field(1, ge=1)
    stale_replace_seconds: float = Field(
        600.0,
        ge=0,
        description="Qdrant server: a replace unfinished this long is rolled "
        "back or finished by the next process that opens the store",
    )

    @property
    def qdrant_path(self) -> Path:
        """The embedded store's folder; one per engine, since their files differ."""
        return self.data_dir / ("qdrant-edge" if self.embedded_engine == "edge" else "qdrant")


class EmbeddingSettings(PathSettings):
    """Dense embeddings: the model in-process, or an OpenAI-compatible embedding server."""

    embedding_model: str = BUNDLED_BGE
    embedding_backend: str = "onnx"
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    query_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="ONNX Runtime threads of the session that embeds questions (its own, "
        "threads not spinning between runs); 0: questions share the passages' session",
    )
    query_instruction: str = "Represent this sentence for searching relevant passages: "
    embedding_url: str | None = Field(
        None,
        description="Base URL of an embedding server (vLLM pooling runner, TEI, "
        "infinity), e.g. http://embeddings:8000/v1; ingestion embeds there instead of "
        "in-process. Same model as RAG_EMBEDDING_MODEL (checked at start)",
    )
    embedding_server_model: str = Field(
        "bge-small-en-v1.5", description="the model name the server serves"
    )
    embedding_api_key: SecretStr | None = None
    embedding_server_queries: bool = Field(
        False,
        description="embed questions on the server too (default: in-process, lower "
        "latency for one short text)",
    )
    embedding_request_size: int = Field(64, ge=1, le=2048, description="texts per request")
    embedding_requests_in_flight: int = Field(4, ge=1, le=64)
    embedding_timeout_s: float = Field(60.0, gt=0)
    embedding_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="retries of a failed request "
        "(5xx, 429, timeouts, refused connections), with backoff",
    )
    embedding_min_cosine: float = Field(
        0.995,
        gt=0,
        le=1,
        description="the server's vectors for fixed probe texts must "
        "match those the collection was built with at least this closely",
    )


class ChunkingSettings(BaseModel):
    """Parents for the LLM, passages for the embedder."""

    parent_tokens: int = Field(4096, ge=64, description="Target parent size, Llama 3.1 tokens")
    passage_tokens: int = Field(
        256, ge=16, description="Target passage size in embedding-model tokens"
    )


class ParsingSettings(BaseModel):
    """Parsing and its bounds: a hostile or broken file must never stall or exhaust a worker."""

    max_file_mb: float = Field(50.0, gt=0)
    pdf_text: Literal["pdfium", "unstructured"] = Field(
        "pdfium", description="PDF text layer: PDFium (fast) or unstructured's pdfminer path"
    )
    parse_with_spacy: bool = Field(
        False, description="classify elements with unstructured's spaCy path (slow)"
    )
    parse_timeout_s: float = Field(
        120.0,
        gt=0,
        description="a parse with no progress this long is stopped (an OCRed page is progress)",
    )
    parse_max_wall_s: float = Field(
        900.0,
        gt=0,
        description="wall clock per file's parse in all, whatever the progress (covers "
        "RAG_OCR_MAX_PAGES scanned pages at ~0.6 page/s)",
    )
    parse_max_memory_mb: int = Field(
        2048, ge=64, description="RSS of the parser process and its Tesseract processes together"
    )
    parse_max_archive_mb: float = Field(
        200.0, gt=0, description="DOCX/PPTX/XLSX declared uncompressed size"
    )
    parse_max_archive_ratio: float = Field(
        100.0,
        gt=1,
        description="compression ratio no part may exceed once such parts hold over 1 MB",
    )
    parse_max_archive_members: int = Field(10_000, ge=1)
    parse_max_pages: int = Field(5_000, ge=1)
    parse_max_chars: int = Field(20_000_000, ge=1)
    parse_max_elements: int = Field(200_000, ge=1)
    ingest_allow_hardlinks: bool = Field(
        False,
        description="read files with more than one hard link (another name of the file may "
        "lie outside the allowed roots)",
    )


class OcrSettings(BaseModel):
    """OCR (Tesseract) of scanned PDF pages and images."""

    ocr: bool = Field(True, description="OCR PDF pages without a text layer and image files")
    ocr_languages: str = Field(
        "eng",
        pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        description="Tesseract languages, e.g. 'eng' or 'eng+deu' "
        "(installed traineddata only: checked at start)",
    )
    ocr_dpi: int = Field(200, ge=72, le=600, description="rendering resolution of PDF pages")
    ocr_workers: int = Field(2, ge=1, le=64, description="Tesseract processes at once")
    ocr_min_confidence: float = Field(
        40.0,
        ge=0,
        le=100,
        description="pages whose mean word confidence is lower are reported, not indexed",
    )
    ocr_max_pages: int = Field(
        500, ge=1, description="most pages OCRed in one file (checked before any OCR)"
    )
    ocr_max_blank_run: int = Field(
        20,
        ge=1,
        description="more OCRed pages than this in a row without usable text (blank or under "
        "the confidence floor) fail the file",
    )
    ocr_max_pixels: int = Field(
        50_000_000,
        ge=1,
        description="largest image frame OCRed (width x height, from the header); PDF pages "
        "larger at RAG_OCR_DPI are rendered at a lower resolution",
    )
    ocr_page_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Tesseract's limit per page; each page read also extends RAG_PARSE_TIMEOUT_S",
    )
    ocr_layout: Literal["single_column", "auto"] = Field(
        "single_column",
        description="'single_column' reads lines top to bottom (robust on "
        "compressed scans); 'auto' lets Tesseract find columns (multi-column pages)",
    )


class RootsSettings(PathSettings):
    """What ingestion may read: the upload inbox and the configured roots."""

    inbox_dir: Path | None = Field(None, description="upload target; default <data_dir>/inbox")
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders POST /v1/ingest may name besides the inbox "
        "(default: the inbox only); every file read must resolve inside one of them",
    )

    @property
    def inbox(self) -> Path:
        return self.inbox_dir or self.data_dir / "inbox"

    @property
    def api_ingest_roots(self) -> list[Path]:
        """The shared roots: the inbox and the configured roots. Ingestion through the API
        or the queue may name only these, and queue workers mount them at the same place."""
        return [self.inbox, *self.ingest_roots]


class QueueSettings(BaseModel):
    """The ingestion queue (Celery on Redis)."""

    broker_url: str | None = Field(
        None,
        description="Redis URL of the ingestion queue, e.g. redis://redis:6379/0; "
        "when set, ingestion is enqueued and run by `python -m ingest --worker` processes",
    )
    queue_sentinel_master: str | None = Field(
        None,
        description="with a Sentinel broker URL (sentinel://h1:26379;sentinel://h2:26379"
        "/0): the monitored master's name (Redis highly available)",
    )
    queue_name: str = "rag-ingest"
    queue_concurrency: int = Field(2, ge=1, le=64, description="tasks a worker runs at once")
    queue_visibility_timeout_s: float = Field(
        60.0,
        ge=4,
        description="a task whose worker has not been heard of this long (it died) is "
        "delivered again; a live worker extends its tasks' visibility every quarter of this, "
        "so a long task is never redelivered while it runs",
    )
    queue_restore_interval_s: float = Field(
        10.0, gt=0, description="how often workers look for such tasks"
    )
    queue_max_retries: int = Field(
        5,
        ge=0,
        le=50,
        description="retries of a task that hit "
        "a transient fault (store, embedding server) before its "
        "files go to the dead letters",
    )
    queue_retry_backoff_s: float = Field(5.0, ge=0, description="first retry delay; doubles")
    queue_max_deliveries: int = Field(
        3,
        ge=1,
        le=100,
        description="starts of one task that never finished (its worker died each time) "
        "before its files go to the dead letters",
    )
    queue_stall_s: float = Field(
        120.0,
        ge=2,
        description="a consumer with room that received nothing while tasks waited in the "
        "queue this long is deaf (Celery after a broker reconnect) and is restarted",
    )
    queue_batch_files: int = Field(16, ge=1, le=1000, description="small files per task")
    queue_batch_mb: float = Field(4.0, gt=0, description="bytes of small files per task")


class RetrievalSettings(BaseModel):
    """Hybrid retrieval and the optional reranker."""

    retrieval_mode: RetrievalMode = RetrievalMode.hybrid
    fusion: Fusion = Fusion.rrf
    prefetch_limit: int = Field(100, ge=1, le=10_000)
    # 16 = nearly every passage of a 4,096-token parent: the excerpt packer then picks the
    # best passages globally (BENCHMARKS.md: +14 to +20 questions at 4K-16K fills over 8).
    passages_per_parent: int = Field(16, ge=1, le=32)
    search_window: float = Field(
        1.0,
        ge=0.25,
        le=8.0,
        description="passages ranked per branch and grouped into parents, as a multiple of "
        "parents wanted x passages_per_parent (widened while too few parents appear; the "
        "follow-up hop's: 4 passages per parent, not widened); 1 "
        "measured as good as 2 on HotpotQA-dev and SQuAD at a third less search time at 1M "
        "(BENCHMARKS.md, 'A million passages')",
    )
    rerank: bool = False
    rerank_candidates: int = Field(
        40, ge=1, le=200, description="parents retrieved for the cross-encoder to choose from"
    )
    rerank_passages_per_parent: int = Field(
        2, ge=1, le=32, description="best matched passages of each parent the cross-encoder reads"
    )
    default_top_k: int = Field(16, ge=1, le=100)
    # Iterative retrieval (rag.answer.hops; BENCHMARKS.md, "multi-hop"): follow-up searches
    # seeded by the first hop's best parents, fused with it by rank.
    retrieval_hops: int = Field(
        2, ge=1, le=2, description="1: one search; 2: plus one follow-up hop (rag.answer.hops)"
    )
    hop_queries: int = Field(
        1, ge=0, le=10, description="follow-up searches at most (one per best first-hop parent)"
    )
    hop_budget_ms: int = Field(
        250,
        ge=0,
        le=10_000,
        description="a follow-up not started this long after retrieval began is skipped",
    )
    hop_decompose: bool = Field(
        False,
        description="the LLM proposes the follow-up searches on the answer path "
        "(rag.answer.decompose; falls back to the deterministic hop); off everywhere until "
        "measured for the served model (python -m bench multihop --llm URL): the local "
        "135M model's proposals lose to the deterministic hop",
    )
    hop_decompose_max_tokens: int = Field(96, ge=8, le=512)
    hop_decompose_timeout_s: float = Field(4.0, gt=0, le=60)
    # Calibrated for the default BGE-small on SQuAD and HotpotQA dev questions (BENCHMARKS.md,
    # "relevance floor"): 0 of 700 real questions refused; another embedding model needs its
    # own figures (`python -m bench relevance`).
    min_relevance: float = Field(
        0.50,
        ge=0.0,
        le=1.0,
        description="relevance floor of answers: a question whose best passage's dense "
        "cosine is under it gets no_matching_documents without the LLM (0: off)",
    )
    min_relevance_without_terms: float = Field(
        0.70,
        ge=0.0,
        le=1.0,
        description="the same floor for a question none of whose terms any passage holds "
        "(gibberish, keyboard mash); the higher of the two applies (0: off)",
    )


class LLMSettings(BaseModel):
    """The LLM server and the context budget."""

    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "smollm2-135m-instruct"
    rag_model_id: str = Field(
        "rag",
        description="the model id OpenAI clients name for this "
        "service's grounded answers (GET /v1/models)",
    )
    llm_api_key: SecretStr | None = None
    llm_tokenizer: str = Field(
        "auto", description="'llama3' (local tiktoken), 'server' (/tokenize) or 'auto'"
    )
    context_window: int = Field(131_072, ge=512)
    margin_ratio: float = Field(0.10, ge=0.0, lt=0.9)
    target_fill_tokens: int = Field(32_768, ge=256)
    default_max_tokens: int = Field(1024, ge=1)
    max_tokens_limit: int = Field(8192, ge=1)
    llm_connect_timeout: float = Field(5.0, gt=0)
    llm_first_token_timeout: float = Field(120.0, gt=0)
    llm_total_timeout: float = Field(600.0, gt=0)
    llm_retries: int = Field(2, ge=0, le=10)
    llm_repetition_penalty: float | None = Field(
        None,
        gt=0,
        description="vLLM's repetition_penalty sent with every answer (None: the server's "
        "default); the local profile sets it against a small model repeating its sentence",
    )
    min_context_tokens: int = Field(
        1000,
        ge=0,
        description="prompt tokens reserved for retrieved sources (at most half the prompt "
        "limit): the client's own text (question, system messages) may not take them (413), "
        "and earlier turns are trimmed to leave them",
    )


class ConversationSettings(BaseModel):
    """Conversations: history in the budget and the follow-up rewrite."""

    history_share: float = Field(
        0.25, ge=0.0, le=0.9, description="most of the prompt limit history may take"
    )
    rewrite_queries: bool = Field(
        True,
        description="rewrite follow-ups with the LLM for search (else the deterministic fallback)",
    )
    rewrite_turns: int = Field(3, ge=1, le=20, description="recent turns the rewrite reads")
    rewrite_max_tokens: int = Field(64, ge=8, le=512)
    rewrite_timeout_s: float = Field(8.0, gt=0)
    max_history_turns: int = Field(
        200, ge=0, description="most earlier turns a request may carry (beyond: 422)"
    )
    max_history_chars: int = Field(
        200_000,
        ge=0,
        description="most characters of earlier turns a request may carry (beyond: 422)",
    )


class ApiSettings(BaseModel):
    """The HTTP API: address, keys, limits, logs."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    max_question_chars: int = Field(8000, ge=1)
    cpu_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="threads for the answer path's CPU work (counting, escaping, packing), "
        "never the event loop; requests beyond wait their turn",
    )
    search_workers: int = Field(
        8, ge=1, le=256, description="threads for searches (query embedding, the store)"
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Bearer keys; comma-separated in the env"
    )
    api_keys_file: Path | None = Field(
        None, description="named keys: TOML [[keys]] of hashes (old form: a key per line)"
    )
    allow_no_auth: bool = Field(False, description="serve a non-loopback address without keys")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(1_000_000, ge=1024)
    max_upload_mb: float = Field(50.0, gt=0)
    log_json: bool = True
    header_timeout_s: float = Field(
        10.0, gt=0, description="a connection must send a complete request head within this"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="a request body may pause this long between bytes"
    )
    keepalive_timeout_s: int = Field(5, ge=1, description="an idle keep-alive connection")
    mcp_calls_per_minute: int = Field(
        60, ge=0, description="MCP tool calls per principal per minute (a token bucket); 0: none"
    )
    trace_text: bool = Field(
        False, description="put question and document text in trace spans (OpenTelemetry)"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections at once; beyond: 503 and closed"
    )

    def all_api_keys(self) -> list[str]:
        """Plain keys (the old form): the setting's, and a keys file's of plain lines. A
        keys file in TOML (``[[keys]]`` tables, hashes only: ``api.auth.keys``) has none."""
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file and self.api_keys_file.is_file():
            lines = [
                line.strip()
                for line in self.api_keys_file.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
            if not any(line.startswith("[") for line in lines):
                keys += lines
        return keys


class DefaultAccess(str, Enum):
    """Who may read a document whose access list is empty."""

    everyone = "everyone"
    admins = "admins"


class AccessSettings(BaseModel):
    """Who may read what (``rag.access``): the policy for documents without an access list."""

    default_access: DefaultAccess = Field(
        DefaultAccess.everyone,
        description="who reads a document with an empty access list: everyone or admins "
        "(the production profile sets admins); applied at query time, so a change is "
        "retroactive",
    )
    default_collection: str = Field(
        "default",
        min_length=1,
        max_length=64,
        description="a document's collection when none is given",
    )


class AuthSettings(BaseModel):
    """How a request becomes a principal (``api.auth``): single sign-on and trusted proxies."""

    auth_jwks_url: str | None = Field(None, description="an OIDC provider's JWKS endpoint")
    auth_jwks_file: Path | None = Field(None, description="a JWKS document on disk")
    auth_issuer: str | None = Field(None, description="the `iss` every token must carry")
    auth_audience: str | None = Field(None, description="the `aud` every token must carry")
    auth_principal_claim: str = Field("sub", description="the claim naming the principal")
    auth_groups_claim: str = Field("groups", description="the claim listing the groups")
    auth_role_claim: str = Field("rag_role", description="the claim naming the role")
    auth_default_role: str = Field(
        "reader", description="the role of a token without the role claim"
    )
    auth_jwks_refresh_s: float = Field(
        300.0, ge=1, description="keys are fetched at most this often on an unknown kid"
    )
    auth_leeway_s: float = Field(30.0, ge=0, le=300, description="clock skew allowed on exp/nbf")
    auth_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or networks whose X-Forwarded-User / X-Forwarded-Groups "
        "are believed (oauth2-proxy); ignored and logged from anyone else",
    )
    auth_proxy_role: str = Field(
        "reader", description="the role of a principal named by a trusted proxy"
    )


class AuditSettings(PathSettings):
    """The audit trail (``rag.audit``): append-only JSON lines."""

    audit_log: Path | None = Field(
        None, description="the audit trail's file (default: <data_dir>/audit/audit.jsonl)"
    )
    audit_questions: bool = Field(
        False, description="write question texts (GDPR: off by default, a hash otherwise)"
    )
    audit_max_bytes: int = Field(
        50_000_000, ge=10_000, description="the file is rotated beyond this size"
    )
    audit_backups: int = Field(10, ge=1, le=1000, description="rotated files kept")

    @property
    def audit_path(self) -> Path:
        return self.audit_log or self.data_dir / "audit" / "audit.jsonl"


class FeedbackSettings(PathSettings):
    """Answer feedback (``rag.feedback``): one JSON line per rating, kept for evaluation."""

    feedback_log: Path | None = Field(
        None, description="the feedback file (default: <data_dir>/feedback/feedback.jsonl)"
    )
    feedback_max_mb: int = Field(
        100,
        ge=1,
        le=100_000,
        description="the feedback file's bound: past it a rating is refused (507), "
        "none is dropped; an operator exports and moves the file away",
    )

    @property
    def feedback_path(self) -> Path:
        return self.feedback_log or self.data_dir / "feedback" / "feedback.jsonl"


class RemoteSettings(ApiSettings):
    """How `python -m ingest` reaches a running API that owns the embedded store."""

    api_url: str | None = Field(
        None, description="When set, `python -m ingest` sends work to this running API"
    )
    api_client_key: SecretStr | None = Field(
        None,
        description="Bearer key `python -m ingest` sends to RAG_API_URL (default: the "
        "first of RAG_API_KEYS / RAG_API_KEYS_FILE)",
    )

    def client_key(self) -> str | None:
        """The key `python -m ingest` presents to RAG_API_URL."""
        if self.api_client_key is not None:
            return self.api_client_key.get_secret_value()
        keys = self.all_api_keys()
        return keys[0] if keys else None


class Settings(
    BaseSettings,
    StoreSettings,
    EmbeddingSettings,
    ChunkingSettings,
    ParsingSettings,
    OcrSettings,
    RootsSettings,
    QueueSettings,
    RetrievalSettings,
    LLMSettings,
    ConversationSettings,
    RemoteSettings,
    AccessSettings,
    AuthSettings,
    AuditSettings,
    FeedbackSettings,
):
    """Every knob of the service: one flat model made of the groups above (env names are
    the fields' names prefixed with ``RAG_``; see the README's table). A component is built
    from its group (``settings.store``, ``settings.llm``...): the group is this same object
    seen through a narrower type, so the type checker holds each component to the knobs of
    its group, while every process still reads one model.

    Who takes the whole model: the composition roots (``rag.wiring.open_index``,
    ``api.app.build_services``, ``ingest.jobs.open_jobs``, the CLIs) and the owners that
    assemble parts from several groups (``RagPipeline``, ``Indexer``, ``QdrantStore``, the
    queue's ``Producer`` and consumer, the start-up auth checks); they hand each part its
    group. Every other component takes its group (or plain values), nothing more."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", extra="ignore", validate_default=True
    )

    @property
    def store(self) -> StoreSettings:
        return self

    @property
    def embedding(self) -> EmbeddingSettings:
        return self

    @property
    def chunking(self) -> ChunkingSettings:
        return self

    @property
    def parsing(self) -> ParsingSettings:
        return self

    @property
    def ocr_settings(self) -> OcrSettings:
        return self

    @property
    def roots(self) -> RootsSettings:
        return self

    @property
    def queue(self) -> QueueSettings:
        return self

    @property
    def retrieval(self) -> RetrievalSettings:
        return self

    @property
    def llm(self) -> LLMSettings:
        return self

    @property
    def conversation(self) -> ConversationSettings:
        return self

    @property
    def api(self) -> ApiSettings:
        return self

    @property
    def remote(self) -> RemoteSettings:
        return self

    @property
    def access(self) -> AccessSettings:
        return self

    @property
    def auth(self) -> AuthSettings:
        return self

    @property
    def audit(self) -> AuditSettings:
        return self

    @property
    def feedback(self) -> FeedbackSettings:
        return self

    @field_validator("data_dir", "model_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(value).expanduser()

    @field_validator(
        "api_keys", "cors_origins", "ingest_roots", "auth_trusted_proxies", mode="before"
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.passage_tokens > 510:
            raise ValueError("passage_tokens must leave room for [CLS]/[SEP] within 512")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        profile = os.environ.get("RAG_CONFIG_FILE")
        if profile:
            path = Path(profile)
            if not path.is_file():
                raise FileNotFoundError(f"RAG_CONFIG_FILE={profile} does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build settings; a function so tests can pass overrides without touching the env."""
    return Settings(**overrides)
