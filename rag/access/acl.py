"""The access a document carries: its collection and who may read it.

Stored on every passage, parent and document record as two payload keys
(``rag.store.payloads``): ``collection`` (a keyword, the tenant index) and ``acl``, a list of
tokens: ``group:<name>``, ``user:<name>``, or the single token ``default`` for an empty list
(resolved by ``RAG_DEFAULT_ACCESS`` at query time, so changing the policy is retroactive).
Points written before access control have no ``acl`` and are readable by admins only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_TOKEN = "default"
GROUP_PREFIX = "group:"
USER_PREFIX = "user:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")


class AccessError(ValueError):
    """An access list or collection that cannot be stored (bad name, forbidden grant)."""


def check_name(kind: str, value: str) -> str:
    value = value.strip()
    if not _NAME.match(value):
        raise AccessError(
            f"invalid {kind} name {value!r}: letters, digits and _.@+- only, up to 128 "
            "characters, starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class AccessList:
    """A document's collection and readers. Empty ``groups`` and ``users``: the default
    policy decides (``RAG_DEFAULT_ACCESS``)."""

    collection: str = "default"
    groups: frozenset[str] = field(default_factory=frozenset)
    users: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        collection: str | None = None,
        groups: list[str] | tuple[str, ...] | frozenset[str] | None = None,
        users: list[str] | tuple[str, ...] | frozenset[str] | None = None,
        *,
        default_collection: str = "default",
    ) -> AccessList:
        """Validated (``AccessError`` on a bad name)."""
        return cls(
            collection=check_name("collection", collection or default_collection),
            groups=frozenset(check_name("group", g) for g in (groups or ()) if g.strip()),
            users=frozenset(check_name("user", u) for u in (users or ()) if u.strip()),
        )

    @property
    def is_default(self) -> bool:
        return not self.groups and not self.users

    def tokens(self) -> list[str]:
        """The stored ``acl`` payload value (sorted: equal lists store equal payloads)."""
        if self.is_default:
            return [DEFAULT_TOKEN]
        return sorted(
            [GROUP_PREFIX + g for g in self.groups] + [USER_PREFIX + u for u in self.users]
        )

    @classmethod
    def from_payload(cls, collection: str | None, tokens: list[str] | None) -> AccessList:
        groups = {t[len(GROUP_PREFIX) :] for t in tokens or () if t.startswith(GROUP_PREFIX)}
        users = {t[len(USER_PREFIX) :] for t in tokens or () if t.startswith(USER_PREFIX)}
        return cls(collection or "default", frozenset(groups), frozenset(users))

    def to_payload(self) -> dict[str, object]:
        return {"collection": self.collection, "acl": self.tokens()}

    def describe(self) -> dict[str, object]:
        """What responses show: collection, groups, users (sorted)."""
        return {
            "collection": self.collection,
            "groups": sorted(self.groups),
            "users": sorted(self.users),
        }
