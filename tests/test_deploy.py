"""The production shape, validated with real tools (no Docker engine runs on these machines).

docker-compose.yml is checked against the Compose specification's JSON schema
(check-jsonschema's vendored copy) and for the properties production relies on; the
Dockerfile is parsed by the official BuildKit parser (the `dockerfile` package) and linted.
"""

import subprocess
import sys
from pathlib import Path

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_matches_the_compose_spec_schema():
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_production_properties():
    services = compose()["services"]
    assert set(services) == {"qdrant", "vllm", "embeddings", "redis", "api", "worker"}
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image must be pinned"
    q = services["qdrant"]
    assert any(v.endswith(":/qdrant/storage") for v in q["volumes"]) and "healthcheck" in q
    v = services["vllm"]
    assert "--max-model-len=131072" in v["command"]
    assert "--model=meta-llama/Llama-3.1-8B-Instruct" in v["command"]
    assert "HF_TOKEN" in v["environment"] and "${HF_TOKEN" in v["environment"]["HF_TOKEN"]
    gpu = v["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "/health" in " ".join(v["healthcheck"]["test"])
    assert any(x.endswith(":/root/.cache/huggingface") for x in v["volumes"])
    api, worker = services["api"], services["worker"]
    assert api["image"] == worker["image"] and api["command"] != worker["command"]
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert api["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert worker["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert worker["command"][-1] == "--worker"
    r = services["redis"]
    assert "--appendonly" in r["command"] and "noeviction" in r["command"]
    assert "healthcheck" in r and any(v.endswith(":/data") for v in r["volumes"])
    e = services["embeddings"]
    assert "--runner=pooling" in e["command"] and "--max-model-len=512" in e["command"]
    shares = [
        float(c.split("=")[1])
        for svc in (v, e)
        for c in svc["command"]
        if c.startswith("--gpu-memory-utilization")
    ]
    assert len(shares) == 2 and sum(shares) <= 0.95  # one GPU, a stated split
    for svc in (api, worker):
        assert svc["environment"]["RAG_BROKER_URL"].startswith("redis://redis")
        assert svc["environment"]["RAG_EMBEDDING_URL"].startswith("http://embeddings")
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["embeddings"]["condition"] == "service_healthy"
    env = api["environment"]
    assert env["RAG_QDRANT_URL"].startswith("http://qdrant") and "vllm" in env["RAG_LLM_BASE_URL"]
    assert env["RAG_CONFIG_FILE"].endswith("production.toml")


def test_dockerfile_parses_and_follows_the_rules():
    commands = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    kinds = [c.cmd for c in commands]
    base = commands[0]
    assert base.cmd == "FROM" and ":" in base.value[0] and "latest" not in base.value[0]
    assert "USER" in kinds and commands[kinds.index("USER")].value[0] not in ("root", "0")
    assert "HEALTHCHECK" in kinds and kinds[-1] == "CMD"
    assert "ADD" not in kinds  # no remote ADD, only COPY of files in the repo
    for c in commands:
        if c.cmd == "COPY":
            for src in c.value[:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} missing"
        if c.cmd == "RUN" and "apt-get install" in c.value[0]:
            assert (
                "--no-install-recommends" in c.value[0]
                and "rm -rf /var/lib/apt/lists" in c.value[0]
            )
    installs = " ".join(c.value[0] for c in commands if c.cmd == "RUN")
    assert "torch==2.13.0" in installs and "prepare_models.py" in installs


def test_production_profile_loads():
    import os

    from rag.settings import Settings

    old = os.environ.get("RAG_CONFIG_FILE")
    os.environ["RAG_CONFIG_FILE"] = str(ROOT / "configs" / "production.toml")
    try:
        s = Settings()
    finally:
        if old is None:
            del os.environ["RAG_CONFIG_FILE"]
        else:
            os.environ["RAG_CONFIG_FILE"] = old
    assert s.llm_model == "meta-llama/Llama-3.1-8B-Instruct" and s.llm_tokenizer == "llama3"
    assert s.qdrant_url == "http://qdrant:6333" and s.context_window == 131072
