"""The LLM client against real local HTTP servers: stream parsing, retries only before the
first token, deadlines, malformed answers, an unreachable server, tokenizer discovery."""

import asyncio
import time

import pytest

from rag.answer.llm import (
    LLMBadResponse,
    LLMClient,
    LLMConfig,
    LLMTimeout,
    LLMUnavailable,
    tokens_of_tokenizer_info,
)
from tests.helpers.servers import free_port

MESSAGES = [{"role": "user", "content": "hi"}]


def client(base: str, **overrides) -> LLMClient:
    return LLMClient(
        LLMConfig(
            base_url=base,
            model="fake",
            **{"first_token_timeout": 3.0, "total_timeout": 20.0, "retries": 2, **overrides},
        )
    )


async def collect(llm: LLMClient):
    try:
        return [e async for e in llm.stream_chat(MESSAGES, max_tokens=8, temperature=0)]
    finally:
        await llm.close()


def run(coro):
    return asyncio.run(coro)


def test_stream_is_parsed_into_deltas_then_usage(fault_server):
    url, _ = fault_server
    events = run(collect(client(f"{url}/ok/v1")))
    assert "".join(e.delta for e in events) == "Hello world [1]."
    last = events[-1]
    assert last.finish_reason == "stop" and last.usage["completion_tokens"] == 3


def test_server_errors_are_retried_before_any_token(fault_server):
    url, fs = fault_server
    before = fs.calls.get("error500", 0)
    with pytest.raises(LLMBadResponse):
        run(collect(client(f"{url}/error500/v1", retries=2)))
    assert fs.calls["error500"] - before == 3


def test_a_cut_stream_is_never_retried(fault_server):
    url, fs = fault_server
    before = fs.calls.get("cut", 0)
    with pytest.raises(LLMBadResponse, match="before \\[DONE\\]"):
        run(collect(client(f"{url}/cut/v1")))
    assert fs.calls["cut"] - before == 1


def test_first_token_deadline(fault_server):
    url, _ = fault_server
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        run(collect(client(f"{url}/slow/v1", first_token_timeout=1.0, retries=0)))
    assert time.monotonic() - started < 10


def test_total_deadline_while_dripping(fault_server):
    url, _ = fault_server
    with pytest.raises(LLMTimeout, match="too long"):
        run(collect(client(f"{url}/drip/v1", total_timeout=1.5)))


def test_malformed_json(fault_server):
    url, _ = fault_server
    with pytest.raises(LLMBadResponse, match="malformed JSON"):
        run(collect(client(f"{url}/badjson/v1")))


def test_unreachable_server_is_unavailable():
    with pytest.raises(LLMUnavailable):
        run(collect(client(f"http://127.0.0.1:{free_port()}/v1", retries=1)))


def test_window_and_tokenizer_discovery(fault_server):
    url, _ = fault_server

    async def discover():
        llm = client(f"{url}/ok/v1")
        try:
            return await llm.served_window(), await llm.special_tokens()
        finally:
            await llm.close()

    window, specials = run(discover())
    assert window == 4096 and specials is None  # the fake server offers no /tokenizer_info


def test_tokens_of_a_tokenizer_config():
    info = {
        "added_tokens_decoder": {
            "0": "<|endoftext|>",
            "5": {"content": "<file_sep>"},
            "9": "hello",
        },
        "additional_special_tokens": ["<jupyter_output>"],
        "eos_token": "</s>",
        "pad_token": None,
    }
    assert tokens_of_tokenizer_info(info) == (
        "</s>",
        "<file_sep>",
        "<jupyter_output>",
        "<|endoftext|>",
    )


def test_the_repetition_penalty_setting_reaches_the_request_body():
    from rag.settings import Settings

    settings = Settings(llm_repetition_penalty=1.2)
    llm = LLMClient(LLMConfig.from_settings(settings.llm))
    body = llm.chat_payload(MESSAGES, max_tokens=8, temperature=0)
    assert body["repetition_penalty"] == 1.2
    unset = LLMClient(LLMConfig(base_url="http://127.0.0.1:1/v1", model="fake"))
    assert "repetition_penalty" not in unset.chat_payload(MESSAGES, max_tokens=8, temperature=0)
    run(llm.close())
    run(unset.close())


def test_the_local_profile_sets_no_repetition_penalty():
    """vLLM's penalty counts the prompt's tokens too: it keeps the small model from copying
    its sources (rag.answer.repeats cuts repeated sentences instead)."""
    import tomllib

    with open("configs/local.toml", "rb") as f:
        assert "llm_repetition_penalty" not in tomllib.load(f)
