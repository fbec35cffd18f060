"""One client must not stall the service: slow and surplus connections, bounded metric
labels, a scrape off the event loop, request ids on 500s, security headers, no Host echoed
in redirects, /readyz checks cached.

The connection tests talk raw sockets to a real ``python -m api`` process with short
timeouts set through the environment; the rest use the app in-process on a real socket.
"""

from __future__ import annotations

import os
import random
import selectors
import socket
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.app import create_app
from api.deps import Services
from api.routes.health import ReadinessCache
from api.security import PAGE_CSP
from rag.answer.llm import LLMClient, LLMConfig
from rag.answer.pipeline import RagPipeline
from rag.settings import Settings
from rag.store.qdrant_store import QdrantStore
from tests.helpers.api_process import ApiProcess
from tests.helpers.servers import serve

KEY = "hardening-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 300


# --- in-process ------------------------------------------------------------------------
@dataclass
class CountingLLM:
    """Counts every request an LLM server gets (only to count: /readyz's upstream calls)."""

    hits: int = 0
    app: FastAPI = field(default_factory=FastAPI)

    def __post_init__(self) -> None:
        @self.app.middleware("http")
        async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
            self.hits += 1
            return await call_next(request)

        @self.app.get("/v1/models")
        async def models() -> dict[str, object]:
            return {"data": [{"id": "fake", "max_model_len": 4096}]}


@pytest.fixture(scope="module")
def counting_llm() -> Iterator[tuple[str, CountingLLM]]:
    llm = CountingLLM()
    with serve(llm.app) as url:
        yield url, llm


@pytest.fixture(scope="module")
def hardened(tmp_path_factory, embedder, counting_llm):
    base, llm_server = counting_llm
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("hardened") / "data",
        api_keys=[KEY],
        llm_base_url=f"{base}/v1",
        llm_model="fake",
        llm_tokenizer="server",
    )
    store = QdrantStore(settings, embedder.name, embedder.dimension)
    llm = LLMClient(LLMConfig(base_url=settings.llm_base_url, model="fake"))
    services = Services(settings, RagPipeline(settings, embedder, store, llm), store, llm, None)
    app = create_app(settings, services=services)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with serve(app) as url:
        yield url, app, llm_server
    store.close()


def test_an_unhandled_error_carries_its_request_id(hardened):
    url, _, _ = hardened
    r = httpx.get(url + "/v1/boom", headers=AUTH)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    rid = r.json()["error"]["request_id"]
    assert len(rid) == 32 and r.headers["x-request-id"] == rid
    assert r.headers["x-content-type-options"] == "nosniff"
    r = httpx.get(url + "/v1/boom", headers={**AUTH, "X-Request-Id": "trace-500"})
    assert r.json()["error"]["request_id"] == "trace-500" == r.headers["x-request-id"]


def test_every_response_has_the_security_headers(hardened):
    url, _, _ = hardened
    for path, headers, status in [
        ("/", {}, 200),
        ("/static/app.js", {}, 200),
        ("/healthz", {}, 200),
        ("/v1/documents", {}, 401),
        ("/no-such-page", {}, 404),
        ("/openapi.json", AUTH, 200),
    ]:
        r = httpx.get(url + path, headers=headers)
        assert r.status_code == status, path
        assert r.headers["content-security-policy"] == PAGE_CSP, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "no-referrer", path
    assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    docs = httpx.get(url + "/docs", headers=AUTH)  # Swagger UI: CDN scripts, inline start
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_no_redirect_echoes_the_host_header(hardened):
    url, _, _ = hardened
    for method, path in [
        ("GET", "/v1/documents/"),
        ("POST", "/v1/search/"),
        ("GET", "/healthz/"),
        ("GET", "/static"),
        ("GET", "/readyz/"),
    ]:
        r = httpx.request(method, url + path, headers={**AUTH, "Host": "evil.example"})
        assert r.status_code == 404, (path, r.status_code)
        assert "location" not in r.headers and "evil.example" not in r.text


def test_readyz_checks_upstream_once_per_interval(hardened):
    url, app, llm_server = hardened
    app.state.readiness = ReadinessCache(ttl_s=60)  # longer than the burst, even under load
    before = llm_server.hits
    assert httpx.get(url + "/readyz").json()["ready"] is True
    first = llm_server.hits - before
    assert first >= 1  # the window, and the server's special tokens

    def ask(headers: dict[str, str]) -> int:
        return httpx.get(url + "/readyz", headers=headers, timeout=10).status_code

    threads = [threading.Thread(target=ask, args=({} if i % 2 else AUTH,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    detailed = httpx.get(url + "/readyz", headers=AUTH).json()
    assert detailed["checks"]["llm"]["max_model_len"] == 4096
    assert "passages" in detailed["checks"]["store"]
    assert "passages" not in httpx.get(url + "/readyz").json()["checks"]["store"]
    assert llm_server.hits - before == first  # 23 more probes, no more upstream calls
    app.state.readiness = ReadinessCache(ttl_s=0.2)  # past its interval it asks again
    httpx.get(url + "/readyz")
    time.sleep(0.3)
    httpx.get(url + "/readyz")
    assert llm_server.hits - before == 3 * first


def _series(url: str) -> set[str]:
    text = httpx.get(url + "/metrics").text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


def test_metric_labels_come_from_fixed_sets(hardened):
    url, _, _ = hardened
    rng = random.Random(21)

    def token(n: int) -> str:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))

    def burst(count: int) -> list[str]:
        sent = []
        with httpx.Client(base_url=url) as client:
            for _ in range(count):
                method, path = token(10), "/" + token(12).lower()
                sent += [method, path]
                for m, p in ((method, path), (method, "/v1/search"), (method, "/healthz")):
                    client.request(m, p)
                client.get(path)
                client.post("/v1/" + token(8).lower())
        return sent

    burst(3)  # the fixed series these requests map to now exist (the scrape's own too)
    _series(url)
    before = _series(url)
    sent = burst(300)
    after = _series(url)
    assert after == before, sorted(after ^ before)[:10]
    text = httpx.get(url + "/metrics").text
    assert 'method="other"' in text and 'route="unmatched"' in text
    assert not any(s in text for s in sent[:50])
    print(f"series: {len(before)} before, {len(after)} after 1,500 requests")


class _SlowCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        time.sleep(1.5)
        yield GaugeMetricFamily("slow_gauge", "a collector that takes its time", value=1)

    def describe(self) -> list[GaugeMetricFamily]:
        return []


def test_a_slow_scrape_does_not_block_other_requests(hardened):
    url, app, _ = hardened
    slow = _SlowCollector()
    app.state.metrics.registry.register(slow)
    try:
        scrape = threading.Thread(target=lambda: httpx.get(url + "/metrics", timeout=30))
        scrape.start()
        time.sleep(0.2)
        started = time.perf_counter()
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200
        waited = time.perf_counter() - started
        scrape.join()
    finally:
        app.state.metrics.registry.unregister(slow)
    assert waited < 0.5, f"/healthz waited {waited:.2f} s for the scrape"


@pytest.mark.browser
def test_the_page_works_under_its_csp(ingested, embedder):
    """Chromium enforcing the page's policy: a search, a source opened, the documents view;
    no violation reported and no page error."""
    from playwright.sync_api import sync_playwright

    from tests.api.conftest import api_for

    with (
        api_for(ingested, embedder, "http://127.0.0.1:9/v1") as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        response = page.goto(url + "/?q=Normans+Sicily&mode=search")
        assert response is not None and response.headers["content-security-policy"] == PAGE_CSP
        page.wait_for_selector("#sources li")
        page.click("#sources li >> nth=0")
        page.locator("#v-text mark").first.wait_for()
        page.click("#tab-docs")
        page.wait_for_selector("#docs-table tbody tr")
        violations = page.evaluate("window.__csp")
        browser.close()
    assert violations == [] and errors == [], (violations, errors)


# --- a real process, raw sockets -------------------------------------------------------
@pytest.fixture(scope="module")
def slow_api(tmp_path_factory) -> Iterator[ApiProcess]:
    tmp = tmp_path_factory.mktemp("slow-clients")
    env = {
        "RAG_DATA_DIR": str(tmp / "data"),
        "RAG_API_KEYS": KEY,
        "RAG_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "RAG_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "RAG_BODY_TIMEOUT_S": "1",
        "RAG_KEEPALIVE_TIMEOUT_S": "1",
        "RAG_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    api = ApiProcess(env, tmp / "api.log").start()
    try:
        yield api
    finally:
        api.stop()


def _fds(api: ApiProcess) -> int:
    assert api.proc is not None
    return len(os.listdir(f"/proc/{api.proc.pid}/fd"))


def _connect(api: ApiProcess, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    if first:
        s.sendall(first)
    return s


@dataclass
class Closed:
    after_s: dict[socket.socket, float] = field(default_factory=dict)
    data: dict[socket.socket, bytes] = field(default_factory=dict)


def _wait_closed(
    socks: list[socket.socket], drip: set[socket.socket], started: float, limit_s: float
) -> Closed:
    """Read every socket until the server closes it (or ``limit_s`` after ``started``, when
    the sockets were opened), sending one more header byte to each ``drip`` socket every
    0.2 s meanwhile."""
    seen, last_drip = Closed(), 0.0
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            seen.data[s] = b""
        while len(seen.after_s) < len(socks) and time.monotonic() - started < limit_s:
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                if chunk:
                    seen.data[s] += chunk
                else:
                    seen.after_s[s] = time.monotonic() - started
                    sel.unregister(s)
            if time.monotonic() - last_drip > 0.2:
                last_drip = time.monotonic()
                for s in drip - seen.after_s.keys():
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
    return seen


def test_slow_clients_are_closed_after_the_timeout(slow_api):
    api = slow_api
    baseline = _fds(api)
    opened = time.monotonic()
    partial = [
        _connect(api, b"GET /v1/documents HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(200)
    ]
    drip = [_connect(api, b"GET /healthz HTTP/1.1\r\nX-Drip: ") for _ in range(20)]
    silent = [_connect(api) for _ in range(10)]
    body = (
        b"POST /v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    stalled = [_connect(api, body) for _ in range(10)]
    kept = []
    for _ in range(10):  # a served request, then a partial next one on the same connection
        s = _connect(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x")
        kept.append(s)
    socks = partial + drip + silent + stalled + kept
    time.sleep(0.2)
    held = _fds(api)
    assert held >= baseline + len(socks) - 5
    assert httpx.get(api.url + "/healthz", timeout=5).status_code == 200  # still served
    seen = _wait_closed(socks, set(drip), opened, limit_s=HEADER_TIMEOUT_S + 5)
    open_left = [s for s in socks if s not in seen.after_s]
    assert not open_left, f"{len(open_left)} connections still open"
    longest = max(seen.after_s.values())  # since the first was opened
    assert longest < HEADER_TIMEOUT_S + 1.5
    for s in partial + drip + stalled + kept:
        assert seen.data[s].startswith(b"HTTP/1.1 408"), seen.data[s][:80]
        assert b'"request_timeout"' in seen.data[s]
    assert all(seen.data[s] == b"" for s in silent)  # nothing sent: closed without a word
    for s in socks:
        s.close()
    time.sleep(0.2)
    after = _fds(api)
    assert after <= baseline + 3
    assert httpx.get(api.url + "/healthz", timeout=5).status_code == 200
    print(
        f"fds {baseline} -> {held} with {len(socks)} slow clients -> {after}; "
        f"all closed {longest:.2f} s after the first was opened"
    )


def test_connections_beyond_the_limit_are_refused_at_once(slow_api):
    api = slow_api
    baseline = _fds(api)
    socks = [_connect(api) for _ in range(MAX_CONNECTIONS + 50)]
    time.sleep(0.3)
    refused = []
    for s in socks:
        s.setblocking(False)
        try:
            refused.append(s.recv(65536))
        except BlockingIOError:
            pass
    refused = [r for r in refused if r]
    assert len(refused) >= 50
    assert all(r.startswith(b"HTTP/1.1 503") and b'"overloaded"' in r for r in refused)
    assert _fds(api) <= baseline + MAX_CONNECTIONS  # the server held at most the limit
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert httpx.get(api.url + "/healthz", timeout=5).status_code == 200
