"""The one place a principal becomes a Qdrant filter: ``ReadScope.to_qdrant``.

Every read of stored documents (hybrid search in both branches, parents, document records,
listings) passes a ``ReadScope`` to the store, which puts this filter *inside* the Qdrant
request: nothing is filtered after retrieval and ``top_k`` is never shrunk by it.

Rules (``ReadScope.allows`` states the same rules in Python, for records already read):
- an admin reads every document (optionally limited to some collections);
- anyone else reads a document whose ``acl`` holds ``user:<name>`` or ``group:<g>`` for one
  of their groups, or ``default`` when ``RAG_DEFAULT_ACCESS=everyone``;
- a point without ``acl`` (stored before access control) is for admins only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qdrant_client import models as qm

from rag.access.acl import DEFAULT_TOKEN, GROUP_PREFIX, USER_PREFIX
from rag.access.principal import Principal


@dataclass(frozen=True)
class ReadScope:
    """What one request may read: the principal's tokens, or everything (admins)."""

    #: None: no access restriction (an admin, or a process that owns the store)
    tokens: frozenset[str] | None
    #: restrict to these collections (empty: every collection)
    collections: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def everything(cls) -> ReadScope:
        """The scope of the store's own maintenance (ingestion, pruning, benchmarks)."""
        return cls(tokens=None)

    @classmethod
    def of(
        cls,
        principal: Principal,
        *,
        default_is_everyone: bool,
        collections: list[str] | tuple[str, ...] | frozenset[str] = (),
    ) -> ReadScope:
        wanted = frozenset(c for c in collections if c)
        if principal.is_admin:
            return cls(tokens=None, collections=wanted)
        tokens = {USER_PREFIX + principal.name} | {GROUP_PREFIX + g for g in principal.groups}
        if default_is_everyone:
            tokens.add(DEFAULT_TOKEN)
        return cls(tokens=frozenset(tokens), collections=wanted)

    def narrowed(self, collections: list[str] | tuple[str, ...]) -> ReadScope:
        """The same principal, limited to some collections (a request's own choice)."""
        wanted = frozenset(c for c in collections if c)
        if not wanted:
            return self
        if self.collections:
            wanted = wanted & self.collections or frozenset({"\x00none"})
        return ReadScope(self.tokens, wanted)

    def conditions(self) -> list[qm.Condition]:
        """The ``must`` conditions this scope adds to a Qdrant filter."""
        must: list[qm.Condition] = []
        if self.tokens is not None:
            must.append(qm.FieldCondition(key="acl", match=qm.MatchAny(any=sorted(self.tokens))))
        if self.collections:
            must.append(
                qm.FieldCondition(key="collection", match=qm.MatchAny(any=sorted(self.collections)))
            )
        return must

    def to_qdrant(self) -> qm.Filter | None:
        must = self.conditions()
        return qm.Filter(must=must) if must else None

    def allows(self, collection: str | None, acl: list[str] | None) -> bool:
        """The same rule for a payload already in hand (a record, a cached parent)."""
        if self.collections and (collection or "default") not in self.collections:
            return False
        if self.tokens is None:
            return True
        return bool(self.tokens & set(acl or ()))

    @property
    def unrestricted(self) -> bool:
        return self.tokens is None and not self.collections
