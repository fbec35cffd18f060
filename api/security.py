"""Authentication at the door: every /v1 route (and the OpenAPI schema and docs) needs a
principal once any authentication is configured (API keys, a JWKS, trusted proxies; which
request becomes which principal is ``api.auth``).

Checked by an ASGI middleware before routing and before the body is read, so a request
without credentials gets 401 whatever else is wrong with it (bad JSON, unknown route under
/v1). Keys are compared in constant time, never logged, and a failure says only why the
credentials were refused. Paths outside /v1 stay public, but a principal found there (a
trusted proxy's headers, a valid key) is attached too, so the page works behind a proxy.

Also here: the security headers every response carries (CSP, ``nosniff``, no framing, no
referrer) and the check that refuses an open bind without authentication.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.authenticate import Authenticator, AuthFailure, auth_configured
from api.deps import PRINCIPAL_KEY
from api.errors import is_openai_path, openai_error_body
from rag.access import Principal
from rag.settings import Settings

#: Paths outside /v1 that describe the API and so are no more public than the API itself.
_SCHEMA_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class UnsafeBind(RuntimeError):
    pass


def needs_key(path: str) -> bool:
    return path.startswith(("/v1/", "/mcp/")) or path in ("/v1", "/mcp") or path in _SCHEMA_PATHS


class AuthMiddleware:
    """401 ``{"error": ...}`` (OpenAI-shaped on OpenAI paths) for protected paths without a
    principal; CORS preflights pass (they carry no credentials by design and the CORS
    middleware answers them). No authentication configured: everything runs as the local
    admin, as before access control."""

    def __init__(self, app: Any, authenticator: Authenticator) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.authenticator.configured:  # one circle of trust
            state[PRINCIPAL_KEY] = Principal.local_admin()
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        result = await self.authenticator.authenticate(scope)
        if isinstance(result, Principal):
            state[PRINCIPAL_KEY] = result
        if isinstance(result, Principal) or not needs_key(scope["path"]):
            await self.app(scope, receive, send)
            return
        message = (
            result.message
            if isinstance(result, AuthFailure)
            else self.authenticator.missing_message
        )
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
    """Refuse to serve a non-loopback address with no authentication (keys, a JWKS, trusted
    proxies) unless explicitly allowed."""
    if is_loopback(settings.api_host) or settings.allow_no_auth or auth_configured(settings):
        return
    raise UnsafeBind(
        f"refusing to listen on {settings.api_host} without API keys: set RAG_API_KEYS or "
        "RAG_API_KEYS_FILE (or RAG_AUTH_JWKS_URL / RAG_AUTH_TRUSTED_PROXIES), or "
        "RAG_ALLOW_NO_AUTH=true if a proxy in front authenticates"
    )
