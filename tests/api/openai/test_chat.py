"""/v1/chat/completions as applications use it: the official `openai` client, against the
running API and the real vLLM (non-stream and stream, system message, errors)."""

import openai
import pytest
from pydantic import SecretStr

from tests.api.conftest import api_for
from tests.helpers.servers import free_port

QUESTION = "Where was the Zorblax reactor built?"


@pytest.fixture(scope="module")
def client(ingested, embedder, vllm):
    with api_for(ingested, embedder, vllm) as url:
        yield openai.OpenAI(
            base_url=f"{url}/v1", api_key="no-key-needed", max_retries=0, timeout=180
        )


@pytest.mark.llm
def test_models_lists_the_rag_model(client):
    assert [m.id for m in client.models.list().data] == ["rag"]


@pytest.mark.llm
def test_non_stream_answer_with_sources(client):
    completion = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}], max_tokens=48
    )
    answer = completion.choices[0].message.content
    assert "Oslo" in answer and completion.choices[0].finish_reason in ("stop", "length")
    rag = completion.model_extra["rag"]
    assert rag["sources"][0]["source"].endswith("reactor-update.eml")
    assert rag["search_query"] == QUESTION and rag["search_query_source"] == "question"
    assert completion.usage.prompt_tokens == rag["usage"]["prompt_tokens"] > 0


@pytest.mark.llm
def test_stream_with_sources_first_and_usage_last(client):
    chunks = list(
        client.chat.completions.create(
            model="rag",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=48,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant"
    assert first.model_extra["rag"]["sources"][0]["source"].endswith("reactor-update.eml")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Oslo" in text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and "citations" in finals[0].model_extra["rag"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


@pytest.mark.llm
def test_a_system_message_is_kept_after_ours(client):
    plain = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": QUESTION}], max_tokens=16
    )
    told = client.chat.completions.create(
        model="rag",
        max_tokens=16,
        messages=[
            {"role": "system", "content": "Answer in one short sentence for a newsletter."},
            {"role": "user", "content": QUESTION},
        ],
    )
    assert told.usage.prompt_tokens > plain.usage.prompt_tokens  # in the prompt, counted


@pytest.mark.llm
def test_follow_up_through_the_sdk(client):
    completion = client.chat.completions.create(
        model="rag",
        max_tokens=32,
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "It was built in Oslo, Norway."},
            {"role": "user", "content": "And who commissioned it?"},
        ],
    )
    rag = completion.model_extra["rag"]
    assert "Zorblax" in rag["search_query"] and rag["usage"]["history_turns_kept"] == 1


@pytest.mark.llm
def test_wrong_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
        )
    assert err.value.body["code"] == "model_not_found"


def test_wrong_key_is_an_authentication_error(ingested, embedder, fault_server):
    url, _ = fault_server
    with api_for(
        ingested, embedder, f"{url}/ok/v1", model="fake", api_keys=[SecretStr("right-key")]
    ) as api:
        sdk = openai.OpenAI(base_url=f"{api}/v1", api_key="wrong-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as err:
            sdk.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": QUESTION}]
            )
        assert err.value.body["code"] == "invalid_api_key"
        good = openai.OpenAI(base_url=f"{api}/v1", api_key="right-key", max_retries=0)
        assert good.models.list().data[0].id == "rag"


def test_llm_down_is_a_503_status_error(ingested, embedder):
    with api_for(ingested, embedder, f"http://127.0.0.1:{free_port()}/v1", llm_retries=0) as api:
        sdk = openai.OpenAI(base_url=f"{api}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            sdk.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": QUESTION}]
            )
        assert err.value.status_code == 503
        assert err.value.body["type"] == "server_error"
        with pytest.raises(openai.BadRequestError):  # a 400 in OpenAI's shape
            sdk.chat.completions.create(model="rag", messages=[])
