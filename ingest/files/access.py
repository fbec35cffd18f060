"""The access a job stamps on each file: the job's own fields, ``.rag-access.toml`` files,
the stored document, the defaults; and the grant rule.

A ``.rag-access.toml`` in a folder applies to every file below it (subfolders included)::

    collection = "hr"
    groups = ["hr", "execs"]
    users = ["alice"]

All keys are optional; any other key, a value of the wrong type or a bad name makes the
file malformed. Resolution is **per key**, first found wins:

1. the job's own field (``--collection/--groups/--users``, the API's fields), when given;
2. the nearest ``.rag-access.toml`` (the file's folder, then each folder above it, up to
   the filesystem root) that sets the key;
3. the stored document's value (re-ingesting an edited file keeps its access; a job that
   says nothing changes nothing);
4. the defaults: ``RAG_DEFAULT_COLLECTION``, no groups, no users (``RAG_DEFAULT_ACCESS``).

An ingester's job (not an admin's, not the operator's CLI) is the exception to 1: there the
access files are the operator's policy and win over the job's fields, and every group the
result names (from the job or a file) must be one of the ingester's, every user the
ingester itself (``grant_violation``), or the file fails.

A malformed access file fails every file under it, each with one failure line naming the
access file; it never falls back to open access. The access files are never ingested
(``ACCESS_FILE`` is hidden, and the walk leaves it out). Folders are read once per job
(``AccessResolver`` caches per folder).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.access.acl import AccessError, AccessList, check_name
from rag.store.payloads import DocumentRecord

ACCESS_FILE = ".rag-access.toml"
_KEYS = ("collection", "groups", "users")


class AccessFileError(ValueError):
    """A file's access cannot be decided (a malformed access file, a forbidden grant): the
    file fails with this one line."""


def split_names(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """``["hr,execs", "ops"]`` -> ``("hr", "execs", "ops")``; None stays None (not given)."""
    if values is None:
        return None
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def grant_violation(
    groups: Iterable[str], users: Iterable[str], owner: str, owner_groups: frozenset[str] | None
) -> str | None:
    """Why a principal may not grant this (None: it may). ``owner_groups`` None: no limit
    (an admin, the operator); otherwise only those groups, and no user but ``owner``."""
    if owner_groups is None:
        return None
    for group in sorted(groups):
        if group not in owner_groups:
            return (
                f"{owner or 'this principal'} may not grant group {group!r} (not one of its groups)"
            )
    for user in sorted(users):
        if user != owner:
            return f"{owner or 'this principal'} may not grant user {user!r} (only itself)"
    return None


@dataclass(frozen=True)
class JobAccess:
    """What a job says about access (None: not given) and who submitted it."""

    collection: str | None = None
    groups: tuple[str, ...] | None = None
    users: tuple[str, ...] | None = None
    #: the submitting principal's name (``ingested_by``); '' for the service's own jobs
    owner: str = ""
    #: the grant rule: None, may grant anything (admin, CLI); else only these groups
    owner_groups: frozenset[str] | None = None

    def __post_init__(self) -> None:  # validated once, at submit time (AccessError)
        if self.collection is not None:
            object.__setattr__(self, "collection", check_name("collection", self.collection))
        for key, kind in (("groups", "group"), ("users", "user")):
            names = getattr(self, key)
            if names is not None:
                object.__setattr__(self, key, tuple(check_name(kind, n) for n in names))

    @property
    def given(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("collection", self.collection),
                ("groups", self.groups),
                ("users", self.users),
            )
            if v is not None
        }

    def violation(self) -> str | None:
        """The job's own fields against the grant rule."""
        return grant_violation(self.groups or (), self.users or (), self.owner, self.owner_groups)

    def to_json(self) -> dict[str, Any]:
        """What job records and queue task payloads carry."""
        return {
            "collection": self.collection,
            "groups": list(self.groups) if self.groups is not None else None,
            "users": list(self.users) if self.users is not None else None,
            "owner": self.owner,
            "owner_groups": sorted(self.owner_groups) if self.owner_groups is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobAccess:
        """A record or task payload of an earlier version (None): nothing given."""
        if not data:
            return cls()
        groups, users, owner_groups = (
            data.get("groups"),
            data.get("users"),
            data.get("owner_groups"),
        )
        return cls(
            collection=data.get("collection"),
            groups=tuple(groups) if groups is not None else None,
            users=tuple(users) if users is not None else None,
            owner=str(data.get("owner") or ""),
            owner_groups=frozenset(owner_groups) if owner_groups is not None else None,
        )


@dataclass(frozen=True)
class _Layer:
    """The keys the access files of one folder and those above it set (nearest wins)."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # key -> the access file setting it
    error: str | None = None


@dataclass(frozen=True)
class Resolved:
    """A file's access before the stored document is consulted: the keys decided (by the
    job or an access file); the others come from the stored document, then the defaults."""

    collection: str | None = None
    groups: frozenset[str] | None = None
    users: frozenset[str] | None = None

    def stamp(self, stored: DocumentRecord | None, default_collection: str) -> dict[str, Any]:
        """The ``{collection, acl}`` payload to store."""
        if stored is not None and self.groups is None and self.users is None:
            acl = list(stored.acl)  # kept verbatim (an older document's [] included)
        else:
            before = stored.access if stored is not None else AccessList()
            acl = AccessList(
                groups=self.groups if self.groups is not None else before.groups,
                users=self.users if self.users is not None else before.users,
            ).tokens()
        if self.collection is not None:
            collection = self.collection
        else:
            collection = stored.collection if stored is not None else default_collection
        return {"collection": collection, "acl": acl}


def as_access(payload: dict[str, Any]) -> AccessList:
    return AccessList.from_payload(payload["collection"], payload["acl"])


class AccessResolver:
    """One job's access resolution; folders' access files are read once (thread-safe
    enough: a race reads a folder twice, with the same result)."""

    def __init__(self, job: JobAccess | None = None) -> None:
        self.job = job or JobAccess()
        self._layers: dict[str, _Layer] = {}

    def resolve(self, path: Path) -> Resolved:
        """``path``'s access keys (``AccessFileError`` when they cannot be decided)."""
        layer = self._layer(os.path.dirname(os.path.abspath(path)))
        if layer.error is not None:
            raise AccessFileError(layer.error)
        job = self.job.given
        files = {k: v for k, v in layer.values.items() if k in _KEYS}
        # An ingester's job: the operator's files win over its fields; otherwise the job's.
        ingester = self.job.owner_groups is not None
        merged = {**job, **files} if ingester else {**files, **job}
        for key in ("groups", "users"):
            names = merged.get(key) or ()
            groups, users = (names, ()) if key == "groups" else ((), names)
            reason = grant_violation(groups, users, self.job.owner, self.job.owner_groups)
            if reason is not None:
                from_file = key in files and (ingester or key not in job)
                raise AccessFileError(
                    f"{reason}, set by access file {layer.sources[key]}" if from_file else reason
                )
        groups, users = merged.get("groups"), merged.get("users")
        return Resolved(
            collection=merged.get("collection"),
            groups=frozenset(groups) if groups is not None else None,
            users=frozenset(users) if users is not None else None,
        )

    def _layer(self, folder: str) -> _Layer:
        cached = self._layers.get(folder)
        if cached is not None:
            return cached
        parent = os.path.dirname(folder)
        above = self._layer(parent) if parent != folder else _Layer()
        layer = above
        if above.error is None:
            own = _read(os.path.join(folder, ACCESS_FILE))
            if isinstance(own, str):
                layer = _Layer(error=own)
            elif own is not None:
                layer = _Layer(
                    {**above.values, **own},
                    {**above.sources, **{k: os.path.join(folder, ACCESS_FILE) for k in own}},
                )
        self._layers[folder] = layer
        return layer


def _read(path: str) -> dict[str, Any] | str | None:
    """An access file's keys, None when there is none, or the one-line reason it is
    malformed."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except OSError as exc:
        return f"access file {path}: unreadable: {exc.strerror or exc}"
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return f"access file {path}: not valid TOML: {exc}"
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        return f"access file {path}: unknown key {unknown[0]!r} (collection, groups, users only)"
    keys: dict[str, Any] = {}
    try:
        if "collection" in data:
            if not isinstance(data["collection"], str):
                return f"access file {path}: collection must be a string"
            keys["collection"] = check_name("collection", data["collection"])
        for key, kind in (("groups", "group"), ("users", "user")):
            if key not in data:
                continue
            value = data[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return f"access file {path}: {key} must be a list of strings"
            keys[key] = tuple(check_name(kind, v) for v in value)
    except AccessError as exc:
        return f"access file {path}: {exc}"
    return keys
