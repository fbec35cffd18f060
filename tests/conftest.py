"""Shared fixtures: real BGE, real Qdrant (embedded), real vLLM (started once per session).

Nothing on the happy path is mocked. Expensive things (the embedding model, an ingested
corpus, the vLLM server) are session-scoped; each test that writes gets its own data dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.services import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DOCS = FIXTURES / "docs"


@pytest.fixture(scope="session")
def embedder():
    from rag.embedding.local import SentenceTransformerEmbedder
    from rag.settings import load_settings

    return SentenceTransformerEmbedder(load_settings())


@pytest.fixture
def settings_factory(tmp_path: Path):
    from rag.settings import Settings

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        return Settings(**overrides)

    return make


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the fixture documents."""
    target = tmp_path / "docs"
    shutil.copytree(DOCS, target)
    return target


@pytest.fixture(scope="session")
def ingested(tmp_path_factory, embedder):
    """A store holding the fixture corpus, shared read-only by search/query tests."""
    from ingest.indexer import Indexer
    from rag.settings import Settings
    from rag.store.qdrant_store import QdrantStore
    from tests.helpers.pdf import write_pdf

    base = tmp_path_factory.mktemp("corpus")
    docs = base / "docs"
    shutil.copytree(DOCS, docs)
    write_pdf(
        docs / "valves.pdf",
        [
            [
                "Quillon valves",
                "",
                "The Quillon valve was invented in Tartu in 1931 by Maret Kask.",
                "It regulates steam flow in small boilers.",
            ],
            ["Maintenance", "Quillon valves must be inspected every 400 operating hours."],
        ],
    )
    settings = Settings(data_dir=base / "data")
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    summary = Indexer(settings, embedder, store).run([docs])
    assert not summary.failed, summary.failed
    yield {"settings": settings, "store": store, "docs": docs, "summary": summary}
    store.close()


@pytest.fixture(scope="session")
def fault_server():
    """An OpenAI-compatible server that fails on purpose (only for failure paths)."""
    from tests.helpers.servers import FaultServer, serve

    fs = FaultServer()
    with serve(fs.app) as url:
        yield url, fs


# --- the real local LLM -------------------------------------------------------------------
def _serving(url: str, model: str) -> bool:
    try:
        response = httpx.get(f"{url}/models", timeout=2)
        return any(m.get("id") == model for m in response.json().get("data", []))
    except (httpx.HTTPError, ValueError):
        return False


@dataclass(frozen=True)
class LocalServer:
    """A real vLLM server the session needs: one already serving ``model`` (at the URL in
    the environment variable ``reuse_env``, else on ``reuse_port``) is reused; otherwise
    ``scripts/<script>`` starts one on a free port, named ``name`` (its pid file)."""

    script: str
    name: str
    model: str
    reuse_env: str
    reuse_port: int

    def reuse(self) -> list[str | None]:
        return [os.environ.get(self.reuse_env), f"http://127.0.0.1:{self.reuse_port}/v1"]


LLM_SERVER = LocalServer("start_vllm.sh", "vllm", "smollm2-135m-instruct", "RAG_TEST_LLM_URL", 8000)
EMBEDDING_SERVER = LocalServer(
    "start_embeddings.sh", "embeddings", "bge-small-en-v1.5", "RAG_TEST_EMBEDDING_URL", 8001
)


def _local_server(tmp_path_factory, server: LocalServer) -> Iterator[str]:
    """The base URL of ``server`` for the session (started here, and stopped after, unless
    one was already serving)."""
    for url in filter(None, server.reuse()):
        if _serving(url, server.model):
            yield url
            return
    port = free_port()
    data = tmp_path_factory.mktemp(server.name)
    env = {**os.environ, "RAG_DATA_DIR": str(data)}
    started = time.monotonic()
    subprocess.run(
        ["bash", str(ROOT / "scripts" / server.script), str(port)], env=env, check=True, timeout=400
    )
    print(f"{server.name} started in {time.monotonic() - started:.0f} s")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        pid = int((data / f"{server.name}.pid").read_text())
        try:
            os.killpg(pid, 15)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def vllm(tmp_path_factory) -> Iterator[str]:
    """Base URL of a real vLLM serving SmolLM2; reuses RAG_TEST_LLM_URL or one on :8000."""
    yield from _local_server(tmp_path_factory, LLM_SERVER)


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory) -> Iterator[str]:
    """Base URL of a real embedding server: vLLM's pooling runner on the CPU serving the
    dequantized BGE; reuses RAG_TEST_EMBEDDING_URL or one on :8001."""
    yield from _local_server(tmp_path_factory, EMBEDDING_SERVER)


@pytest.fixture
def redis_server(tmp_path: Path):
    """A real redis-server of this test (AOF on: a restart keeps what was queued)."""
    from bench.services import RedisServer

    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
