"""The error rows of a route's OpenAPI ``responses``: one call names the statuses it may
answer with, each documented by the error model of its protocol (``ErrorResponse`` on the
native routes, ``OpenAIError`` on the OpenAI-compatible ones)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.native.protocol import ErrorResponse

Responses = dict[int | str, dict[str, Any]]


def errors(*statuses: int, model: type[BaseModel] = ErrorResponse) -> Responses:
    """``responses=errors(404, 422)``: each status answered with ``model``'s JSON body."""
    return {status: {"model": model} for status in statuses}


def streamed(description: str, *statuses: int, model: type[BaseModel] = ErrorResponse) -> Responses:
    """A route answering JSON or, with ``stream``, Server-Sent Events; plus its errors."""
    return {
        **errors(*statuses, model=model),
        200: {"content": {"text/event-stream": {}}, "description": description},
    }
