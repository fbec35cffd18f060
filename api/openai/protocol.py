"""OpenAI-compatible request and response models for ``/v1/chat/completions`` and
``/v1/models``, following vLLM's entrypoints and the official ``openai`` client.

What RAG adds travels in one extra field, ``rag`` (sources, citations, what was searched,
the budget), on the response and on the first and last stream chunks: the SDKs keep unknown
fields (``completion.rag`` / ``completion.model_extra["rag"]``) and ignore them otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_serializer,
)

from api.native.protocol import Searched, SourceOut, UsageOut


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_call_id...: not used here
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class RagOptions(BaseModel):
    """The request's ``rag`` extension: only these collections are searched."""

    model_config = ConfigDict(extra="forbid")
    collections: list[StrictStr] = Field(default_factory=list, max_length=100)


class ChatCompletionRequest(BaseModel):
    """The fields that mean something here; sampling knobs the pipeline does not use
    (top_p, seed, penalties, user) are accepted and ignored, as many servers do.

    Fields that would change what the answer is (tools and functions, a response format
    other than text, log probabilities, more than one choice) are read only to be refused
    (``unsupported``): answering as if they had not been sent would mislead the client."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1, max_length=2000)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | None = Field(None, ge=0.0, le=2.0)
    n: StrictInt | None = Field(None, description="one choice only (1)")
    tools: list[Any] | None = Field(None, description="not supported (400)")
    tool_choice: Any = Field(None, description="not supported (400), but 'none'")
    functions: list[Any] | None = Field(None, description="not supported (400)")
    function_call: Any = Field(None, description="not supported (400), but 'none'")
    response_format: dict[str, Any] | None = Field(None, description="{'type': 'text'} only")
    logprobs: StrictBool | None = Field(None, description="not supported (400)")
    top_logprobs: StrictInt | None = Field(None, description="not supported (400)")
    rag: RagOptions | None = Field(None, description="what this service adds: collections")

    def unsupported(self) -> tuple[str, str] | None:
        """The first field this service cannot honour, and why; None when there is none."""
        if self.tools:
            return (
                "tools",
                "tools (function calling) are not supported: answers come from the documents",
            )
        if self.functions:
            return "functions", "functions (function calling) are not supported"
        for name, value in (
            ("tool_choice", self.tool_choice),
            ("function_call", self.function_call),
        ):
            if value not in (None, "none"):
                return name, f"{name} is not supported (only 'none')"
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            return "response_format", (
                f"response_format {str(kind)[:40]!r} is not supported: answers are text with "
                "[n] citations (only {'type': 'text'})"
            )
        if self.logprobs or self.top_logprobs:
            name = "logprobs" if self.logprobs else "top_logprobs"
            return name, "log probabilities are not supported"
        if self.n not in (None, 1):
            return "n", f"n={self.n} is not supported: one choice only (n=1)"
        return None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rag-service"
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    rag: dict[str, Any] = Field(description="sources, citations, search query and budget")


class ChunkDelta(BaseModel):
    """A chunk's ``delta``: only the keys that are set (``{}`` on the last chunk)."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _set_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None


class ChunkSources(Searched):
    """``rag`` on the first stream chunk: the sources the model is shown, what was
    searched (as in ``QueryResponse``) and the budget."""

    sources: list[SourceOut]
    usage: UsageOut


class ChatCompletionChunk(BaseModel):
    """One ``chat.completion.chunk``: ``rag`` on the first (``ChunkSources``) and last
    (``rag`` of ``ChatCompletion`` less the sources), ``usage`` on its own chunk after the
    last (no choices, with ``stream_options.include_usage``). Absent ones are left out."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    rag: dict[str, Any] | None = None
    usage: CompletionUsage | None = None

    @model_serializer(mode="wrap")
    def _present_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("rag", "usage"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody
