"""The one error type of a misconfigured authentication: its message is one line."""

from __future__ import annotations


class AuthConfigError(Exception):
    """Authentication cannot be set up as configured (``python -m api`` prints the line and
    exits 2, as for a ``StartupError``)."""
