"""The served model as the packer sees it: its tokenizer, its window and its special tokens.

Built once at start (``RagPipeline``), refreshed by the API's start-up and readiness checks
(``refresh``), and forgotten when the LLM fails (``forget_window``): a restarted server may
serve another window, so the next request asks again.

* Counting: exact prompt tokens, chat template included. With ``RAG_LLM_TOKENIZER=llama3``
  (or ``auto`` and a Llama 3 model) the bundled Llama 3.1 tokenizer counts locally; else the
  server's own ``/tokenize`` does (and the local tokenizer only estimates).
* The window: ``max_model_len`` from ``/v1/models`` (None until known).
* Special tokens: the serving tokenizer's added and special tokens (``/tokenizer_info``),
  plus Llama 3's when counting with it, so documents can be escaped against every one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rag.answer.llm import LLMClient
from rag.answer.workers import cpu
from rag.settings import LLMSettings
from rag.text.tokens import count_llama31_chat, llama3_encoding, use_model_dir

log = logging.getLogger(__name__)


def uses_llama3_tokenizer(settings: LLMSettings) -> bool:
    """Whether prompts are counted with the bundled Llama 3.1 tokenizer."""
    choice = settings.llm_tokenizer
    if choice == "auto":
        return "llama-3" in settings.llm_model.lower().replace("llama3", "llama-3")
    return choice == "llama3"


class ServedModel:
    """What is known about the model behind ``llm`` (``llm=None``: counting only, locally)."""

    def __init__(self, settings: LLMSettings, llm: LLMClient | None, model_dir: Path) -> None:
        use_model_dir(model_dir)  # where the bundled tokenizer lies, before the first count
        self.llm = llm
        self._llama3 = uses_llama3_tokenizer(settings)
        self.local = self._llama3 or llm is None  # counts without asking the server
        self.window: int | None = None
        self.special_tokens: tuple[str, ...] = self._with_llama3(())

    def _with_llama3(self, tokens: Sequence[str]) -> tuple[str, ...]:
        base = llama3_encoding().special_tokens_set if self._llama3 else set()
        return tuple(sorted(set(tokens) | base))

    async def count_chat(self, messages: list[dict[str, str]]) -> int:
        """Exact prompt tokens of ``messages`` as the server will see them."""
        if self.local or self.llm is None:  # CPU work: off the event loop
            return await cpu(count_llama31_chat, messages)
        return await self.llm.count_chat_tokens(messages)

    async def refresh(self) -> int | None:
        """Ask the server for ``max_model_len`` (and its tokenizer's special tokens) now;
        keeps the last known values on failure."""
        served = await self.llm.served_window() if self.llm is not None else None
        if served and self.llm is not None:
            self.window = served
            specials = await self.llm.special_tokens()
            if specials is not None:
                self.special_tokens = self._with_llama3(specials)
            elif not self.special_tokens:
                log.warning(
                    "the LLM server does not list its special tokens (start vLLM with "
                    "--enable-tokenizer-info-endpoint); only <|...|> markers are "
                    "escaped in documents"
                )
        return served

    async def known_window(self) -> int | None:
        """The served window, asked for first when not known yet."""
        if self.window is None:
            await self.refresh()
        return self.window

    def forget_window(self) -> None:
        """The server failed: it may come back with another window."""
        self.window = None
