"""Identity headers: believed from a trusted proxy only, ignored (and logged) otherwise."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from api.app import create_app
from api.auth import AuthConfigError, build_authenticator
from api.deps import PRINCIPAL_KEY
from api.security import AuthMiddleware, check_bind_safety
from rag.access import Principal
from rag.settings import Settings
from tests.api.auth.conftest import OTHER_PEER, TRUSTED_PEER, alice_the_ingester, bearer, call

HEADERS = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "hr, legal"}


def proxied(**extra: Any) -> Settings:
    return Settings(
        api_keys=["plain-key"],
        auth_trusted_proxies=["10.0.0.0/24", "::1"],
        auth_proxy_role="ingester",
        **extra,
    )


def test_headers_from_a_trusted_proxy_name_the_principal():
    app = create_app(proxied())
    r = call(app, headers=HEADERS, peer=TRUSTED_PEER)
    assert r.status_code == 200
    assert r.json() == alice_the_ingester("proxy")
    r = call(app, headers={"X-Forwarded-User": "bob"}, peer=("::ffff:10.0.0.7", 1))
    assert r.json()["name"] == "bob" and r.json()["groups"] == []  # IPv4-mapped IPv6


def test_the_same_headers_from_anyone_else_are_ignored_and_logged(caplog):
    app = create_app(proxied())
    with caplog.at_level(logging.WARNING, logger="api.auth.proxy"):
        r = call(app, headers=HEADERS, peer=OTHER_PEER)
        assert r.status_code == 401
        assert call(app, headers=HEADERS, peer=OTHER_PEER).status_code == 401
    logged = [r.getMessage() for r in caplog.records if r.name == "api.auth.proxy"]
    assert len(logged) == 1 and "192.0.2.9" in logged[0]  # once per peer per minute
    # a key still works from there; the headers do not change who it is
    r = call(app, headers={**HEADERS, **bearer("plain-key")}, peer=OTHER_PEER)
    assert r.status_code == 200 and r.json()["name"] == "key-1"


def test_repeated_headers_are_ambiguous():
    app = create_app(proxied())
    r = call(
        app,
        headers=[("X-Forwarded-User", "alice"), ("X-Forwarded-User", "admin")],  # type: ignore[arg-type]
        peer=TRUSTED_PEER,
    )
    assert r.status_code == 401


def test_public_paths_get_the_proxy_principal_too():
    seen: list[Any] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope.get("state", {}).get(PRINCIPAL_KEY))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = AuthMiddleware(inner, build_authenticator(proxied()))

    def request(path: str, peer: tuple[str, int], headers: dict[str, str]) -> int:
        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": peer,
        }
        asyncio.run(middleware(scope, receive, send))
        return status[0]

    assert request("/", TRUSTED_PEER, HEADERS) == 200
    assert isinstance(seen[-1], Principal) and seen[-1].name == "alice"
    assert request("/static/app.js", OTHER_PEER, HEADERS) == 200  # public, no principal
    assert seen[-1] is None
    assert request("/v1/search", OTHER_PEER, HEADERS) == 401
    assert len(seen) == 2  # the route was never reached


def test_proxies_alone_count_as_authentication():
    settings = Settings(auth_trusted_proxies=["10.0.0.1"], api_host="0.0.0.0")
    check_bind_safety(settings)
    app = create_app(settings)
    assert call(app, peer=TRUSTED_PEER).status_code == 401  # no headers: no principal
    r = call(app, headers=HEADERS, peer=("10.0.0.1", 5))
    assert r.json()["role"] == "reader" and r.json()["name"] == "alice"  # the default role


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"auth_trusted_proxies": ["10.0.0.0/33"]}, "not an address or a network"),
        ({"auth_trusted_proxies": ["10.0.0.1"], "auth_proxy_role": "root"}, "unknown role"),
    ],
)
def test_bad_proxy_settings_stop_start_up(extra, problem):
    with pytest.raises(AuthConfigError, match=problem):
        create_app(Settings(**extra))


def test_nothing_configured_is_the_local_admin():
    app = create_app(Settings())
    r = call(app, headers=HEADERS, peer=OTHER_PEER)
    assert r.status_code == 200 and r.json()["source"] == "local" and r.json()["name"] == "local"
