"""The answer use case in OpenAI's chat-completions shapes (vLLM's and the SDK's).

The last user message is the question, earlier user/assistant messages the history, and a
client's system (or developer) messages its instructions, kept after ours within the budget.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from api.deps import Services
from api.errors import APIError, llm_error_body
from api.native.serving import (
    collect_final,
    final_out,
    searched,
    source_out,
    sources_headers,
    usage_out,
)
from api.openai.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ChunkSources,
    CompletionUsage,
    ModelCard,
    ModelList,
    ResponseMessage,
)
from rag.access import ReadScope
from rag.answer import events as ev
from rag.answer.conversation import Message

_INCLUDE = ("passages",)


def models(services: Services) -> ModelList:
    return ModelList(
        data=[
            ModelCard(
                id=services.settings.rag_model_id,
                created=int(services.started_at),
                max_model_len=services.pipeline.model.window,
            )
        ]
    )


def answer_request(
    services: Services, body: ChatCompletionRequest, request_id: str | None, scope: ReadScope
) -> ev.AnswerRequest:
    if body.model != services.settings.rag_model_id:
        raise APIError(
            404,
            "model_not_found",
            f"The model `{body.model[:100]}` does not "
            f"exist; this service serves `{services.settings.rag_model_id}`",
        )
    refused = body.unsupported()
    if refused is not None:
        param, message = refused
        raise APIError(400, "unsupported_parameter", message, {"param": param})
    last = body.messages[-1]
    if last.role != "user":  # nothing is dropped silently: no continuation of a reply
        raise APIError(
            400,
            "invalid_request",
            f"messages must end with the user's question (the last is a {last.role!r} "
            "message; continuing a message is not supported)",
            {"param": "messages"},
        )
    last_user = len(body.messages) - 1  # its text is checked like /v1/query's question
    history = tuple(
        Message(m.role, m.text())
        for m in body.messages[:last_user]
        if m.role in ("user", "assistant")
    )
    instructions = "\n\n".join(
        m.text() for m in body.messages if m.role in ("system", "developer") and m.text().strip()
    )
    return ev.AnswerRequest(
        question=body.messages[last_user].text(),
        scope=scope,
        history=history,
        instructions=instructions or None,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature or 0.0,
        request_id=request_id,
    )


async def chat(
    services: Services,
    body: ChatCompletionRequest,
    request: Request,
    request_id: str | None,
    response: Response,
    scope: ReadScope,
) -> ChatCompletion | StreamingResponse:
    """A chat completion, whole or streamed; either way with the sources in its headers
    (``api.headers``: what survives clients that drop ``rag``)."""
    events = services.pipeline.answer(answer_request(services, body, request_id, scope))
    first = await anext(events)  # failures before it become status codes
    headers = sources_headers(first, request_id)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _chunks(services, first, events, completion_id, created, usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", **headers},
        )
    response.headers.update(headers)
    final = await collect_final(services, first, events, request, _INCLUDE)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=services.settings.rag_model_id,
        choices=[
            Choice(
                message=ResponseMessage(content=final.answer),
                finish_reason=final.finish_reason or "stop",
            )
        ],
        usage=_completion_usage(final.usage.prompt_tokens, final.usage.completion_tokens),
        rag=final.model_dump(exclude={"answer"}),
    )


def _completion_usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _data(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()


class _Chunks:
    """The chunks of one completion (its id, creation time and model)."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id, self.created, self.model = completion_id, created, model

    def chunk(
        self,
        delta: ChunkDelta | None,
        finish: str | None = None,
        *,
        rag: dict[str, Any] | None = None,
        usage: CompletionUsage | None = None,
    ) -> bytes:
        """One ``chat.completion.chunk``; ``delta=None`` is the usage chunk (no choices)."""
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        chunk = ChatCompletionChunk(
            id=self.completion_id,
            created=self.created,
            model=self.model,
            choices=choices,
            rag=rag,
            usage=usage,
        )
        return _data(chunk.model_dump())


def _sources(event: ev.SourcesEvent) -> dict[str, Any]:
    return ChunkSources(
        sources=[source_out(s, _INCLUDE) for s in event.sources],
        usage=usage_out(event.usage),
        **searched(event.search),
    ).model_dump()


async def _chunks(
    services: Services,
    first: ev.AnswerEvent,
    events: ev.AnswerStream,
    completion_id: str,
    created: int,
    usage: bool,
) -> AsyncIterator[bytes]:
    out = _Chunks(completion_id, created, services.settings.rag_model_id)
    event: ev.AnswerEvent | None = first
    try:
        while event is not None:
            if isinstance(event, ev.SourcesEvent):
                yield out.chunk(ChunkDelta(role="assistant", content=""), rag=_sources(event))
            elif isinstance(event, ev.DeltaEvent):
                yield out.chunk(ChunkDelta(content=event.text))
            elif isinstance(event, ev.ErrorEvent):
                yield _data(llm_error_body(event.error, openai=True))
                break
            elif isinstance(event, ev.FinalEvent):
                final = final_out(services, event, _INCLUDE)
                if event.reason is not None:  # nothing matched: the answer comes whole
                    yield out.chunk(ChunkDelta(content=event.answer))
                yield out.chunk(
                    ChunkDelta(),
                    event.finish_reason or "stop",
                    rag=final.model_dump(exclude={"answer", "sources"}),
                )
                if usage:
                    counts = _completion_usage(
                        event.usage.prompt_tokens, event.usage.completion_tokens
                    )
                    yield out.chunk(None, usage=counts)
                break
            event = await anext(events, None)
    finally:
        await events.aclose()
    yield b"data: [DONE]\n\n"
