"""Bearer JWTs from an OIDC provider, verified against its JWKS with PyJWT.

Invariants:
- only RS256 and ES256 are accepted, and only with a key of the matching type from the
  JWKS: ``alg: none``, HS256 (even "signed" with the public key) and anything else fail;
- ``exp`` is required, ``exp``/``nbf`` are checked with ``auth_leeway_s``, and ``iss`` and
  ``aud`` are always checked: a JWKS without ``RAG_AUTH_ISSUER`` and ``RAG_AUTH_AUDIENCE``
  refuses start-up (``AuthConfigError``);
- the JWKS (``RAG_AUTH_JWKS_URL``, fetched with a short timeout, or ``RAG_AUTH_JWKS_FILE``)
  is read at start-up (a failure is logged, not fatal: the provider may be down); a token
  whose ``kid`` is unknown triggers one re-read, at most once per ``auth_jwks_refresh_s``,
  in a thread (never on the event loop); a kid still unknown fails;
- the principal is the ``auth_principal_claim``, its groups the ``auth_groups_claim`` (a
  list of strings, or one comma-separated string), its role the ``auth_role_claim`` (default
  ``auth_default_role``); an unknown role fails the token, it never becomes an admin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from api.auth.errors import AuthConfigError
from rag.access import Principal, Role
from rag.settings import AuthSettings

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1_000_000


class TokenRejected(Exception):
    """A bearer token that does not make a principal; the message is the 401's."""


def parse_jwks(document: Any) -> dict[str | None, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by ``kid`` (RS256/ES256 only)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no `keys` list)")
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(data)
        except jwt.PyJWKError:
            continue  # a key type or algorithm this service does not accept
        if key.algorithm_name in ALGORITHMS:
            keys[key.key_id] = key
    return keys


def url_fetcher(url: str) -> Callable[[], Any]:
    def fetch() -> Any:
        response = httpx.get(url, timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        return response.json()

    return fetch


def file_fetcher(path: Any) -> Callable[[], Any]:
    def fetch() -> Any:
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    return fetch


class JwtVerifier:
    """Verifies bearer tokens; keys cached, re-read on an unknown kid (rate-limited)."""

    def __init__(self, settings: AuthSettings, fetch: Callable[[], Any], source: str) -> None:
        if not settings.auth_issuer or not settings.auth_audience:
            raise AuthConfigError(
                f"a JWKS is configured ({source}) but RAG_AUTH_ISSUER and RAG_AUTH_AUDIENCE "
                "are not both set: tokens must be checked for their issuer and audience"
            )
        try:
            self.default_role = Role.parse(settings.auth_default_role)
        except ValueError as exc:
            raise AuthConfigError(f"RAG_AUTH_DEFAULT_ROLE: {exc}") from None
        self.settings, self.source, self._fetch = settings, source, fetch
        self.refresh_s = settings.auth_jwks_refresh_s
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")  # the start-up read does not count
        self.fetches = 0
        try:
            self._keys = self._read()
        except Exception as exc:  # noqa: BLE001 - any failure: logged, retried on a token
            log.warning("JWKS %s could not be read at start-up: %s", source, exc)

    def _read(self) -> dict[str | None, jwt.PyJWK]:
        self.fetches += 1
        keys = parse_jwks(self._fetch())
        log.info("JWKS %s: %d signing key(s)", self.source, len(keys))
        return keys

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid) if kid is not None else None

    def _refresh_for(self, kid: str | None) -> jwt.PyJWK | None:
        """Re-read the JWKS unless it was re-read less than ``refresh_s`` ago (another
        thread may have just done it: the lock makes the check and the read one step)."""
        with self._lock:
            key = self._key(kid)
            if key is not None:
                return key
            now = time.monotonic()
            if now - self._last_refresh < self.refresh_s:
                return None
            self._last_refresh = now
            try:
                self._keys = self._read()
            except Exception as exc:  # noqa: BLE001 - keep the keys we had
                log.warning("JWKS %s could not be re-read: %s", self.source, exc)
            return self._key(kid)

    async def verify(self, token: str) -> Principal:
        """The token's principal; ``TokenRejected`` with the reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejected("malformed bearer token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenRejected(f"token algorithm {alg!r} is not accepted (RS256, ES256)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed bearer token (kid)")
        key = self._key(kid) or await asyncio.to_thread(self._refresh_for, kid)
        if key is None:
            raise TokenRejected("token signed with an unknown key")
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name],
                audience=s.auth_audience,
                issuer=s.auth_issuer,
                leeway=s.auth_leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("token signature invalid") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        name = claims.get(s.auth_principal_claim)
        if not isinstance(name, str) or not name.strip():
            raise TokenRejected(f"token has no {s.auth_principal_claim!r} claim (a string)")
        raw_groups = claims.get(s.auth_groups_claim, [])
        if isinstance(raw_groups, str):
            groups = [g.strip() for g in raw_groups.split(",")]
        elif isinstance(raw_groups, list) and all(isinstance(g, str) for g in raw_groups):
            groups = [g.strip() for g in raw_groups]
        else:
            raise TokenRejected(f"token claim {s.auth_groups_claim!r} is not a list of strings")
        raw_role = claims.get(s.auth_role_claim)
        if raw_role is None:
            role = self.default_role
        else:
            try:
                role = Role.parse(str(raw_role))
            except ValueError as exc:
                raise TokenRejected(f"token claim {s.auth_role_claim!r}: {exc}") from None
        return Principal(
            name=name.strip(), role=role, groups=frozenset(g for g in groups if g), source="jwt"
        )


def build_verifier(settings: AuthSettings) -> JwtVerifier | None:
    if settings.auth_jwks_url and settings.auth_jwks_file:
        raise AuthConfigError("set RAG_AUTH_JWKS_URL or RAG_AUTH_JWKS_FILE, not both")
    if settings.auth_jwks_url:
        url = settings.auth_jwks_url
        if not url.startswith(("https://", "http://")):
            raise AuthConfigError(f"RAG_AUTH_JWKS_URL={url} is not an http(s) URL")
        return JwtVerifier(settings, url_fetcher(url), url)
    if settings.auth_jwks_file:
        return JwtVerifier(
            settings, file_fetcher(settings.auth_jwks_file), str(settings.auth_jwks_file)
        )
    return None
