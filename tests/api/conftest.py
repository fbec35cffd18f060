"""API fixtures: the real app over the shared ingested store, talking to a chosen LLM URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from api.app import create_app
from api.deps import Services
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from tests.helpers.servers import serve


@contextmanager
def api_for(
    ingested, embedder, llm_url: str, model: str = "smollm2-135m-instruct", jobs=None, **overrides
) -> Iterator[str]:
    settings = ingested["settings"].model_copy(
        update={
            "llm_base_url": llm_url,
            "llm_model": model,
            "llm_tokenizer": "server",
            "target_fill_tokens": 1500,
            "default_max_tokens": 64,
            "llm_first_token_timeout": 90.0,
            "llm_total_timeout": 120.0,
            "llm_retries": 2,
            **overrides,
        }
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


@pytest.fixture(scope="session")
def llm_api(ingested, embedder, vllm) -> Iterator[str]:
    with api_for(ingested, embedder, vllm) as url:
        yield url
