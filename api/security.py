"""API keys: every /v1 route (and the OpenAPI schema and docs) needs
``Authorization: Bearer <key>`` once keys are configured.

Checked by an ASGI middleware before routing and before the body is read, so a request
without a key gets 401 whatever else is wrong with it (bad JSON, unknown route under /v1).
Keys are compared in constant time against every configured key (no early exit), never
logged, and a failure says only that the key is missing or wrong.

Also here: the security headers every response carries (CSP, ``nosniff``, no framing, no
referrer) and the check that refuses an open bind without keys.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import PRINCIPAL_KEY
from api.errors import is_openai_path, openai_error_body
from rag.access import Principal, Role
from rag.settings import Settings

#: Paths outside /v1 that describe the API and so are no more public than the API itself.
_SCHEMA_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class UnsafeBind(RuntimeError):
    pass


def needs_key(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1" or path in _SCHEMA_PATHS


def key_ok(authorization: str | bytes | None, keys: list[bytes]) -> bool:
    """True when no keys are configured or the header carries one of them."""
    if not keys:
        return True
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = (authorization or "").partition(" ")
    presented = token.strip().encode("latin-1", "replace") if scheme.lower() == "bearer" else b""
    ok = False
    for key in keys:  # constant time, and no short cut over the list
        ok |= hmac.compare_digest(presented, key)
    return ok


class AuthMiddleware:
    """401 ``{"error": ...}`` for protected paths without a valid key (CORS preflights pass:
    they carry no credentials by design and the CORS middleware answers them)."""

    def __init__(self, app: Any, keys: list[bytes]) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.keys:  # no authentication configured: one circle of trust
            scope.setdefault("state", {})[PRINCIPAL_KEY] = Principal.local_admin()
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" or not needs_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        if key_ok(header, self.keys):
            # keys in the old form (RAG_API_KEYS, a plain keys file) are admins
            scope.setdefault("state", {})[PRINCIPAL_KEY] = Principal(
                name="api-key", role=Role.admin, source="key"
            )
            await self.app(scope, receive, send)
            return
        message = "missing or invalid API key"
        error = (
            openai_error_body(401, "unauthorized", message)
            if is_openai_path(scope["path"])
            else {"error": {"code": "unauthorized", "message": message}}
        )
        body = json.dumps(error).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


#: The page is static ES modules and one stylesheet from /static, fetches to this origin, and
#: a ``data:`` favicon: nothing inline, nothing from elsewhere.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: FastAPI's /docs and /redoc load their scripts from a CDN and start them inline: they get
#: only the framing rule (they are behind the key when keys are configured).
DOCS_CSP = "frame-ancestors 'none'"
_DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeadersMiddleware:
    """Every response (errors, static files and 500s included: it wraps the whole app)
    carries a Content-Security-Policy, ``nosniff``, no framing and no referrer; a header
    the response already sets wins."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] in _DOCS_PATHS else PAGE_CSP
        extra = [(b"content-security-policy", csp.encode()), *_COMMON_HEADERS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
        "RAG_API_KEYS_FILE, or RAG_ALLOW_NO_AUTH=true if a proxy in front authenticates"
    )
