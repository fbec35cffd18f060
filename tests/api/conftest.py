"""API fixtures: the real app over the shared ingested store, talking to a chosen LLM URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from api.app import create_app
from api.deps import Services
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from tests.helpers.llm_settings import served_settings
from tests.helpers.servers import free_port, serve


@contextmanager
def api_for(
    ingested, embedder, llm_url: str, model: str = "smollm2-135m-instruct", jobs=None, **overrides
) -> Iterator[str]:
    settings = served_settings(
        ingested,
        llm_url,
        model,
        **{
            "default_max_tokens": 64,
            "llm_first_token_timeout": 90.0,
            "llm_total_timeout": 120.0,
            "llm_retries": 2,
            **overrides,
        },
    )
    llm = LLMClient(LLMConfig.from_settings(settings, connect_timeout=2.0))
    services = Services(
        settings=settings,
        pipeline=RagPipeline(settings, embedder, ingested["store"], llm),
        store=ingested["store"],
        llm=llm,
        jobs=jobs,
    )
    with serve(create_app(settings, services=services)) as url:
        yield url


@contextmanager
def api_without_llm(ingested, embedder, **overrides) -> Iterator[str]:
    """The app with no LLM listening (a free port), counting tokens locally (the Llama 3.1
    tokenizer) and never retrying: for what must be settled before the LLM would be asked."""
    with api_for(
        ingested,
        embedder,
        f"http://127.0.0.1:{free_port()}/v1",
        llm_tokenizer="llama3",
        llm_retries=0,
        **overrides,
    ) as url:
        yield url


@pytest.fixture(scope="session")
def llm_api(ingested, embedder, vllm) -> Iterator[str]:
    with api_for(ingested, embedder, vllm) as url:
        yield url
