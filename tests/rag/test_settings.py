"""Settings are the only source of configuration: precedence, list parsing, every field."""

import os

import pytest
from pydantic import SecretStr

from rag.settings import Settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_precedence_arguments_env_dotenv_profile(clean_env, tmp_path):
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'llm_model = "from-profile"\ndefault_top_k = 7\nprefetch_limit = 33\n'
        'collection = "profile"\n'
    )
    (tmp_path / ".env").write_text("RAG_LLM_MODEL=from-dotenv\nRAG_DEFAULT_TOP_K=8\n")
    clean_env.setenv("RAG_CONFIG_FILE", str(profile))
    clean_env.setenv("RAG_LLM_MODEL", "from-env")
    s = Settings(collection="from-argument")
    assert s.collection == "from-argument"  # argument beats the profile
    assert s.llm_model == "from-env"  # env beats .env and profile
    assert s.default_top_k == 8  # .env beats the profile
    assert s.prefetch_limit == 33  # the profile beats the default


def test_a_missing_profile_is_an_error(clean_env, tmp_path):
    clean_env.setenv("RAG_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError):
        Settings()


def test_comma_lists_and_keys_file(clean_env, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# comment\nfile-key\n\n")
    clean_env.setenv("RAG_API_KEYS", "a, b")
    clean_env.setenv("RAG_API_KEYS_FILE", str(keys))
    clean_env.setenv("RAG_INGEST_ROOTS", "/srv/a,/srv/b")
    s = Settings()
    assert s.all_api_keys() == ["a", "b", "file-key"] and s.client_key() == "a"
    assert [str(p) for p in s.ingest_roots] == ["/srv/a", "/srv/b"]
    assert s.api_ingest_roots[0] == s.inbox  # the inbox is always a root


SAMPLES = {
    bool: [("true", True)],
    int: [("7", 7), ("300", 300), ("2000", 2000), ("20000", 20000), ("2", 2)],
    float: [("0.05", 0.05), ("0.5", 0.5), ("2.0", 2.0), ("12.5", 12.5)],
    str: [("xyz", "xyz")],
}


def test_every_simple_field_is_read_from_its_variable(clean_env):
    """Each scalar field answers to RAG_<NAME>: no knob is read from anywhere else."""
    checked = 0
    for name, field in Settings.model_fields.items():
        if field.annotation not in SAMPLES:
            continue
        variable = f"RAG_{name.upper()}"
        for raw, value in SAMPLES[field.annotation]:  # the first value its bounds accept
            clean_env.setenv(variable, raw)
            try:
                got = getattr(Settings(), name)
            except ValueError:
                continue
            assert got == value, name
            checked += 1
            break
        else:
            raise AssertionError(f"no sample value fits {name}")
        clean_env.delenv(variable)
    assert checked > 40


def test_secrets_stay_secret(clean_env):
    clean_env.setenv("RAG_LLM_API_KEY", "sk-secret")
    s = Settings()
    assert isinstance(s.llm_api_key, SecretStr) and "sk-secret" not in repr(s)
