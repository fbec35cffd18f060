"""One streamed answer from the LLM to a packed prompt: text, finish reason, usage, timings.

``Generation.start`` returns once the LLM has accepted the request (its first stream event
arrived); a failure before that is raised (``LLMError``), so the caller can still refuse
the request rather than announce sources. ``deltas()`` then yields the answer text as it
streams (a failure mid-stream is raised from it), and ``result()`` is the whole answer.
Generation stops at the prompt's own markers (``STOP_SEQUENCES``) and at the first sentence
that repeats the answer (``RepeatCut``); echoed source tags are stripped (``MarkupFilter``):
the deltas and the answer alike, so both routes and both modes return the same clean text.
Any LLM failure makes the served model forget its window (a restarted server may serve
another). ``aclose()`` closes the HTTP stream, which makes vLLM abort the request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from rag.answer.llm import LLMClient, LLMError, StreamEvent
from rag.answer.model_info import ServedModel
from rag.answer.prompting import STOP_SEQUENCES, MarkupFilter, Messages
from rag.answer.repeats import RepeatCut


@dataclass(frozen=True)
class Generated:
    """The finished answer (stripped) and what the server said about it."""

    text: str
    finish_reason: str
    usage: dict[str, int] = field(default_factory=dict)  # the server's token counts
    first_token_s: float = 0.0  # to the first text (the whole time when there was none)
    seconds: float = 0.0


class Generation:
    """One answer being streamed; see the module notes for the order of calls."""

    def __init__(
        self, stream: AsyncGenerator[StreamEvent, None], model: ServedModel, started: float
    ) -> None:
        self._stream, self._model, self._started = stream, model, started
        self._pending: StreamEvent | None = None
        self._parts: list[str] = []
        self._first_token: float | None = None
        self._finish = "stop"
        self._usage: dict[str, int] = {}
        self._markup = MarkupFilter()
        self._repeats = RepeatCut()

    @classmethod
    async def start(
        cls,
        llm: LLMClient | None,
        model: ServedModel,
        messages: Messages,
        *,
        max_tokens: int,
        temperature: float,
        request_id: str | None = None,
    ) -> Generation:
        """Send the request and wait for the LLM to accept it (or raise ``LLMError``)."""
        if llm is None:
            raise RuntimeError("no LLM configured")
        started = time.monotonic()
        stream = llm.stream_chat(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            request_id=request_id,
            stop=STOP_SEQUENCES,
        )
        generation = cls(stream, model, started)
        try:
            generation._pending = await generation._next()
        except BaseException:
            await generation.aclose()
            raise
        return generation

    async def _next(self) -> StreamEvent | None:
        try:
            return await anext(self._stream, None)
        except LLMError:
            self._model.forget_window()
            raise

    async def deltas(self) -> AsyncIterator[str]:
        """The answer text as it streams; raises ``LLMError`` when the stream fails."""
        event, self._pending = self._pending, None
        while event is not None:
            text = self._repeats.feed(self._markup.feed(event.delta)) if event.delta else ""
            if text:
                if self._first_token is None:
                    self._first_token = self.elapsed()
                self._parts.append(text)
                yield text
            self._usage = event.usage or self._usage  # on every event: a cut keeps the counts
            if event.finish_reason:
                self._finish = event.finish_reason
            if self._repeats.cut:  # the answer started again: it ends here (vLLM aborts)
                self._finish = "stop"
                await self.aclose()
                break
            event = await self._next()
        rest = self._repeats.feed(self._markup.flush()) + self._repeats.flush()
        if rest:
            self._parts.append(rest)
            yield rest

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def result(self) -> Generated:
        """The whole answer, once ``deltas()`` has run to its end."""
        seconds = self.elapsed()
        first = self._first_token if self._first_token is not None else seconds
        return Generated("".join(self._parts).strip(), self._finish, self._usage, first, seconds)

    async def aclose(self) -> None:
        await self._stream.aclose()
