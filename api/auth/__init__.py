"""How a request becomes a principal: named API keys (``keys``), OIDC bearer tokens
(``jwt``), identity headers from a trusted proxy (``proxy``), combined by one
``Authenticator`` (``authenticate``) that the middleware in ``api.security`` calls before
routing. Every configuration error is an ``AuthConfigError``: one line, start-up stops."""

from api.auth.authenticate import Authenticator, AuthFailure, build_authenticator
from api.auth.errors import AuthConfigError
from api.auth.keys import KeysFileError

__all__ = [
    "AuthConfigError",
    "AuthFailure",
    "Authenticator",
    "KeysFileError",
    "build_authenticator",
]
