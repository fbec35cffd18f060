"""Helpers for the authentication tests: the real app (no lifespan: /v1/me needs no store
or model) driven in-process with a chosen TCP peer address."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

TRUSTED_PEER = ("10.0.0.5", 41000)
OTHER_PEER = ("192.0.2.9", 41000)


def call(
    app: Any,
    path: str = "/v1/me",
    *,
    headers: dict[str, str] | None = None,
    peer: tuple[str, int] = ("127.0.0.1", 40000),
    method: str = "GET",
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, path, headers=headers)

    return asyncio.run(go())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def alice_the_ingester(source: str) -> dict[str, Any]:
    """What /v1/me says of alice, an ingester in hr and legal, identified by ``source``."""
    return {
        "name": "alice",
        "role": "ingester",
        "groups": ["hr", "legal"],
        "source": source,
        "can": {"read": True, "ingest": True, "manage": False},
    }
