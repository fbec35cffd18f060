"""Principals and roles: who a request runs as, and what each role may do.

Invariant: an action is allowed only if ``Role.allows`` says so; there is no other table.
``reader`` < ``ingester`` < ``admin``; each role may do everything the one below may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Action(str, Enum):
    read = "read"  # search, query, chat completions, the page, readable documents/parents
    ingest = "ingest"  # ingest, upload, its own jobs
    manage = "manage"  # every job, dead letters, delete, prune, access changes, audit


class Role(str, Enum):
    reader = "reader"
    ingester = "ingester"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, action: Action) -> bool:
        return self.rank >= _NEEDS[action].rank

    @classmethod
    def parse(cls, value: str) -> Role:
        """A role by name; ``ValueError`` naming the choices otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r} (one of {choices})") from None


_RANK = {Role.reader: 0, Role.ingester: 1, Role.admin: 2}
_NEEDS = {Action.read: Role.reader, Action.ingest: Role.ingester, Action.manage: Role.admin}


@dataclass(frozen=True)
class Principal:
    """A name, a role and groups. ``source`` says how it was established (``key``,
    ``jwt``, ``proxy``, ``local``: no authentication configured on a loopback bind)."""

    name: str
    role: Role
    groups: frozenset[str] = field(default_factory=frozenset)
    source: str = "key"

    def can(self, action: Action) -> bool:
        return self.role.allows(action)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @classmethod
    def local_admin(cls) -> Principal:
        """The principal of a deployment with no authentication configured (loopback only,
        or ``RAG_ALLOW_NO_AUTH``): one circle of trust, as before access control."""
        return cls(name="local", role=Role.admin, source="local")
