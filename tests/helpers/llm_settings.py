"""Settings of the shared ingested store pointed at a chosen LLM, as the answer and API
tests use them: the served tokenizer and a small context to fill."""

from __future__ import annotations

from typing import Any

from rag.settings import Settings

#: The real local LLM of the tests (``vllm``): SmolLM2, counted by the server's tokenizer,
#: with timeouts a CPU-served model meets.
REAL_LLM: dict[str, Any] = {
    "llm_model": "smollm2-135m-instruct",
    "llm_tokenizer": "server",
    "llm_first_token_timeout": 90.0,
    "llm_total_timeout": 120.0,
}


def served_settings(
    ingested: dict[str, Any], llm_url: str, model: str, **overrides: Any
) -> Settings:
    """``ingested["settings"]`` talking to ``model`` at ``llm_url`` (counted by the server's
    tokenizer, 1500 tokens of sources), with ``overrides`` over any of it."""
    return ingested["settings"].model_copy(
        update={
            "llm_base_url": llm_url,
            "llm_model": model,
            "llm_tokenizer": "server",
            "target_fill_tokens": 1500,
            **overrides,
        }
    )
