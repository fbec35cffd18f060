"""Conversations: the turns a client sends with a follow-up, and how many of them fit.

The API is stateless: the client sends the thread (oldest first) with each question. A turn
is a user message with the assistant's answer(s) after it; history is trimmed by whole
turns, oldest first, never the system prompt and never the current question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Turn:
    """A user message and the answers that followed it (possibly none)."""

    messages: tuple[Message, ...]

    @property
    def question(self) -> str:
        return next((m.content for m in self.messages if m.role == "user"), "")


def turns_of(history: Sequence[Message]) -> list[Turn]:
    """Group messages into turns: each user message starts one (an answer before any
    question is a turn of its own)."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return [Turn(tuple(t)) for t in turns]


def flatten(turns: Sequence[Turn]) -> list[Message]:
    return [m for turn in turns for m in turn.messages]


@dataclass(frozen=True)
class HistoryFit:
    """What of the history goes into the prompt."""

    kept: tuple[Turn, ...]
    dropped: int  # whole turns left out, the oldest
    tokens: int  # exact prompt tokens the kept history adds
