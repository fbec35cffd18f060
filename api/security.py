"""API keys: every /v1 route needs ``Authorization: Bearer <key>`` once keys are configured.

Keys are compared in constant time against every configured key (no early exit), never
logged, and a failure says only that the key is missing or wrong.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from api.errors import APIError
from rag.settings import Settings


class UnsafeBind(RuntimeError):
    pass


def require_key(request: Request) -> None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    presented = token.strip().encode() if scheme.lower() == "bearer" else b""
    ok = False
    for key in keys:  # constant time, and no short cut over the list
        ok |= hmac.compare_digest(presented, key)
    if not ok:
        raise APIError(401, "unauthorized", "missing or invalid API key",
                       headers={"WWW-Authenticate": "Bearer"})


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_safety(settings: Settings) -> None:
    """Refuse to serve a non-loopback address with no keys unless explicitly allowed."""
    if is_loopback(settings.api_host) or settings.allow_no_auth or settings.all_api_keys():
        return
    raise UnsafeBind(
        f"refusing to listen on {settings.api_host} without API keys: set RAG_API_KEYS or "
        "RAG_API_KEYS_FILE, or RAG_ALLOW_NO_AUTH=true if a proxy in front authenticates")
