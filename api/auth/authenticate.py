"""The one decision: which principal a request runs as (``Authenticator.authenticate``).

Order: an ``Authorization: Bearer`` value shaped like a JWT (three dot-separated parts) with
a JWKS configured is a token (``api.auth.jwt``); any other bearer value, when keys are
configured, is an API key (``api.auth.keys``); a bearer nothing can check is ignored; then
identity headers from a trusted proxy (``api.auth.proxy``). Presented credentials that fail
are an ``AuthFailure`` (never a fall-back to another method). Nothing configured at all:
``configured`` is False and the middleware runs everything as the local admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.auth.jwt import JwtVerifier, TokenRejected, build_verifier
from api.auth.keys import KeyRing
from api.auth.proxy import ProxyHeaders
from rag.access import Principal
from rag.settings import Settings

KEY_MISS = "missing or invalid API key"


@dataclass(frozen=True)
class AuthFailure:
    """Credentials were presented and refused; ``message`` is the 401's."""

    message: str


def bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def looks_like_jwt(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2])


@dataclass
class Authenticator:
    keys: KeyRing | None = None
    jwt: JwtVerifier | None = None
    proxy: ProxyHeaders | None = None

    @property
    def configured(self) -> bool:
        return bool((self.keys and self.keys.configured) or self.jwt or self.proxy)

    @property
    def missing_message(self) -> str:
        if self.jwt or self.proxy:
            return "missing credentials: send Authorization: Bearer <API key or token>"
        return KEY_MISS

    async def authenticate(self, scope: dict[str, Any]) -> Principal | AuthFailure | None:
        """The request's principal, a refusal of what it presented, or None (nothing)."""
        token = bearer(scope)
        if token is not None:
            if self.jwt is not None and looks_like_jwt(token):
                try:
                    return await self.jwt.verify(token)
                except TokenRejected as exc:
                    return AuthFailure(str(exc))
            if self.keys is not None and self.keys.configured:
                return self.keys.lookup(token) or AuthFailure(KEY_MISS)
        if self.proxy is not None:
            return self.proxy.principal(scope)
        return None


def build_authenticator(settings: Settings) -> Authenticator:
    """From settings; ``AuthConfigError`` (one line) when they cannot work."""
    env_keys = [k.get_secret_value() for k in settings.api_keys]
    keys = KeyRing(env_keys, settings.api_keys_file)
    proxy = (
        ProxyHeaders(settings.auth_trusted_proxies, settings.auth_proxy_role)
        if settings.auth_trusted_proxies
        else None
    )
    return Authenticator(
        keys=keys if keys.configured else None, jwt=build_verifier(settings), proxy=proxy
    )


def auth_configured(settings: Settings) -> bool:
    """Whether any authentication is configured (what ``check_bind_safety`` asks)."""
    return bool(
        settings.api_keys
        or settings.api_keys_file
        or settings.auth_jwks_url
        or settings.auth_jwks_file
        or settings.auth_trusted_proxies
    )
