"""An httpx client for vLLM's OpenAI-compatible API: streaming, timeouts, retries, cancel.

(~370 lines in one module: the streaming, its timeouts, the retry rule and the error kinds
depend on one another, e.g. a retry is allowed only before the first token was read.)

Failures carry a kind (``LLMFailure``, a stable code), not an HTTP status: the API maps
kinds to status codes (``api.errors``).

* ``LLMUnavailable`` (``llm_unavailable``): nothing answered (connection refused, DNS,
  connect timeout);
* ``LLMTimeout`` (``llm_timeout``): the first token or the whole answer took too long;
* ``LLMBadResponse`` (``llm_bad_response``): the server answered wrongly (5xx, malformed
  JSON, a stream cut before ``[DONE]``, a 4xx such as a context-length error).

Retries (with exponential backoff, by tenacity) happen only while no token has been sent
onwards: connection errors and 5xx before streaming starts. Once the caller has seen text, a
retry would duplicate it. Closing the iterator closes the HTTP stream, which makes vLLM
abort the request, so a client that goes away stops the GPU work too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from rag.settings import LLMSettings


class LLMFailure(StrEnum):
    """What kind of failure an ``LLMError`` is; the value is its stable public code."""

    error = "llm_error"
    unavailable = "llm_unavailable"
    timeout = "llm_timeout"
    bad_response = "llm_bad_response"


class LLMError(RuntimeError):
    """``str()`` has the details (URL, upstream text) for logs; ``public`` is what a client
    may be told; ``code`` says which kind of failure it is."""

    code: LLMFailure = LLMFailure.error
    public = "the language model failed"


class LLMUnavailable(LLMError):
    code = LLMFailure.unavailable
    public = "the language model server is not reachable; try again later"


class LLMTimeout(LLMError):
    code = LLMFailure.timeout
    public = "the language model did not answer in time"


class LLMBadResponse(LLMError):
    code = LLMFailure.bad_response
    public = "the language model returned an error or an invalid response"


class _Retryable(Exception):
    """Internal: a failure before any token that is worth another attempt."""

    def __init__(self, error: LLMError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class StreamEvent:
    """Either a text delta (with the usage so far, where the server counts as it goes) or,
    last, the usage and finish reason."""

    delta: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = None
    connect_timeout: float = 5.0
    first_token_timeout: float = 120.0
    total_timeout: float = 600.0
    retries: int = 2
    repetition_penalty: float | None = None  # vLLM's extra sampling parameter; None: unset

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: Any) -> LLMConfig:
        """The one place settings become an LLM client's configuration."""
        config = cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            connect_timeout=settings.llm_connect_timeout,
            first_token_timeout=settings.llm_first_token_timeout,
            total_timeout=settings.llm_total_timeout,
            retries=settings.llm_retries,
            repetition_penalty=settings.llm_repetition_penalty,
        )
        return replace(config, **overrides)


_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
)


def tokens_of_tokenizer_info(info: dict[str, Any]) -> tuple[str, ...]:
    """Every added/special token string in a tokenizer config (as ``tokenizer_config.json``
    or vLLM's ``/tokenizer_info`` spell it: strings, or objects with ``content``). Tokens
    that are plain words (letters and digits only) are left out: escaping them would mangle
    ordinary text, and the tokenizer splits them like text anyway unless added specially."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and len(value) >= 2 and not value.isalnum():
            found.add(value)

    for item in (info.get("added_tokens_decoder") or {}).values():
        add(item)
    for item in info.get("additional_special_tokens") or []:
        add(item)
    for key in _TOKEN_KEYS:
        add(info.get(key))
    return tuple(sorted(found))


class LLMClient:
    def __init__(self, config: LLMConfig):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.total_timeout, connect=config.connect_timeout),
        )
        # vLLM serves /tokenize beside /v1, at the server root.
        root = config.base_url.rstrip("/")
        self._root = root[:-3] if root.endswith("/v1") else root

    async def close(self) -> None:
        await self._http.aclose()

    # --- discovery -------------------------------------------------------------------------
    async def served_window(self) -> int | None:
        """``max_model_len`` of the configured model from /v1/models (None if unknown)."""
        try:
            response = await self._http.get("/models", timeout=self.config.connect_timeout * 2)
            response.raise_for_status()
            for model in response.json().get("data", []):
                if model.get("id") == self.config.model and model.get("max_model_len"):
                    return int(model["max_model_len"])
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            return None
        return None

    async def special_tokens(self) -> tuple[str, ...] | None:
        """The serving tokenizer's added and special tokens, from vLLM's ``/tokenizer_info``
        (served with ``--enable-tokenizer-info-endpoint``); None when it is not offered."""
        try:
            response = await self._http.get(
                f"{self._root}/tokenizer_info", timeout=self.config.connect_timeout * 2
            )
            if response.status_code != 200:
                return None
            info = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return tokens_of_tokenizer_info(info) if isinstance(info, dict) else None

    async def count_chat_tokens(self, messages: list[dict[str, str]]) -> int:
        """Exact prompt tokens with the server's own tokenizer and chat template."""
        try:
            response = await self._http.post(
                f"{self._root}/tokenize",
                json={
                    "model": self.config.model,
                    "messages": messages,
                    "add_generation_prompt": True,
                },
            )
        except httpx.ConnectError as exc:
            raise LLMUnavailable(f"LLM server at {self.config.base_url} is unreachable") from exc
        except httpx.TimeoutException as exc:
            raise LLMTimeout("LLM server timed out while counting tokens") from exc
        if response.status_code >= 400:
            raise LLMBadResponse(
                f"/tokenize answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return int(response.json()["count"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMBadResponse("/tokenize returned malformed JSON") from exc

    # --- generation ------------------------------------------------------------------------
    async def complete_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        timeout: float,
        temperature: float = 0.0,
        request_id: str | None = None,
    ) -> str:
        """The whole answer to a short request, within ``timeout`` seconds (LLMTimeout)."""

        async def collect() -> str:
            stream = self.stream_chat(
                messages, max_tokens=max_tokens, temperature=temperature, request_id=request_id
            )
            try:
                return "".join([event.delta async for event in stream])
            finally:
                await stream.aclose()

        try:
            return await asyncio.wait_for(collect(), timeout=timeout)
        except TimeoutError as exc:
            raise LLMTimeout(f"no complete answer within {timeout:g} s") from exc

    async def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        request_id: str | None = None,
        stop: Sequence[str] = (),
    ) -> AsyncGenerator[StreamEvent, None]:
        payload = self.chat_payload(messages, max_tokens=max_tokens, temperature=temperature)
        # Usage on every chunk (vLLM's continuous_usage_stats): an answer cut short by the
        # caller still knows its token counts.
        options = {"include_usage": True, "continuous_usage_stats": True}
        payload |= {"stream": True, "stream_options": options}
        if stop:
            payload["stop"] = list(stop)
        headers = {"X-Request-Id": request_id} if request_id else {}
        deadline = time.monotonic() + self.config.total_timeout
        response = await self._open_stream(payload, headers)
        try:
            async for event in self._read_stream(response, deadline):
                yield event
        finally:
            await response.aclose()  # on cancel too: vLLM aborts the request on disconnect

    def chat_payload(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        """The chat request's body: the sampling settings every request carries."""
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if self.config.repetition_penalty is not None:
            payload["repetition_penalty"] = self.config.repetition_penalty
        return payload

    async def _open_stream(
        self, payload: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(multiplier=0.25, max=4),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._open_once(payload, headers)
        except _Retryable as exc:
            raise exc.error from exc
        raise LLMUnavailable("no attempt was made")  # pragma: no cover (tenacity reraises)

    async def _open_once(self, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        request = self._http.build_request(
            "POST", "/chat/completions", json=payload, headers=headers
        )
        try:
            response = await asyncio.wait_for(
                self._http.send(request, stream=True), timeout=self.config.first_token_timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retryable(
                LLMUnavailable(f"LLM server at {self.config.base_url} is unreachable")
            ) from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise LLMTimeout(
                f"LLM server sent no response within {self.config.first_token_timeout:.0f} s"
            ) from exc
        except httpx.TransportError as exc:
            raise _Retryable(LLMUnavailable(f"LLM connection failed: {exc}")) from exc
        if response.status_code >= 500:
            body = (await response.aread()).decode(errors="replace")[:200]
            await response.aclose()
            raise _Retryable(LLMBadResponse(f"LLM server error {response.status_code}: {body}"))
        if response.status_code >= 400:
            body = (await response.aread()).decode(errors="replace")[:300]
            await response.aclose()
            raise LLMBadResponse(
                f"LLM server rejected the request ({response.status_code}): {body}"
            )
        return response

    async def _read_stream(
        self, response: httpx.Response, deadline: float
    ) -> AsyncIterator[StreamEvent]:
        lines = response.aiter_lines()
        first = True
        finish: str | None = None
        usage: dict[str, int] = {}
        while True:
            budget = deadline - time.monotonic()
            if first:
                budget = min(budget, self.config.first_token_timeout)
            if budget <= 0:
                raise LLMTimeout(f"answer exceeded {self.config.total_timeout:.0f} s")
            try:
                line = await asyncio.wait_for(lines.__anext__(), timeout=budget)
            except StopAsyncIteration:
                raise LLMBadResponse("LLM stream ended before [DONE]") from None
            except TimeoutError:
                raise LLMTimeout(
                    "LLM sent no first token in time" if first else "LLM answer took too long"
                ) from None
            except httpx.TransportError as exc:
                raise LLMBadResponse(f"LLM stream was cut: {type(exc).__name__}") from exc
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                yield StreamEvent(finish_reason=finish or "stop", usage=usage)
                return
            try:
                chunk = json.loads(data)
                if "error" in chunk:
                    raise LLMBadResponse(f"LLM error mid-stream: {chunk['error']}")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    finish = choice.get("finish_reason") or finish
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        yield StreamEvent(delta=text, usage=usage)
                        first = False
            except (ValueError, TypeError, AttributeError) as exc:
                raise LLMBadResponse("LLM sent malformed JSON in the stream") from exc
