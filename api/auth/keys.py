"""Named API keys: a principal per key, only hashes on disk.

``RAG_API_KEYS_FILE`` is TOML, one ``[[keys]]`` table per key::

    [[keys]]
    name = "alice"          # the principal's name (letters, digits, _.@+-)
    role = "reader"         # reader | ingester | admin
    groups = ["hr", "legal"]
    sha256 = "9f86d0..."    # hex SHA-256 of the key; never the key itself

Invariants:
- the file never holds a key: a ``key`` field is refused (``KeysFileError``), as are an
  unknown role or field, a duplicate name and a sha256 that is not 64 hex digits; each error
  is one line naming the file;
- the old form (``RAG_API_KEYS``, or a keys file of plain lines, one key per line) still
  works: each key is an ``admin`` named ``key-1``, ``key-2``... and start-up logs one warning
  saying to migrate;
- a lookup hashes the presented key and compares it with every entry's digest with
  ``hmac.compare_digest`` (no early exit): timing says nothing about which entry matched;
- revoking a key is removing its entry: the file is read at start-up and read again when its
  modification time changes (checked at most once a second). A file that became malformed
  is logged and *no key from it* is accepted until it is fixed (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.auth.errors import AuthConfigError
from rag.access import AccessError, Principal, Role
from rag.access.acl import check_name

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
#: a plain line that is really a ``name = value`` field (``key = "..."``): not a key
_FIELD_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\s*=\s*\S")
_FIELDS = frozenset({"name", "role", "groups", "sha256"})
#: how often the keys file's modification time is looked at
RECHECK_S = 1.0


class KeysFileError(AuthConfigError):
    """The keys file cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class KeyEntry:
    """One key: the principal it stands for and the SHA-256 digest (32 bytes) of the key."""

    name: str
    role: Role
    groups: frozenset[str]
    digest: bytes = field(repr=False)

    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role, groups=self.groups, source="key")


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def _legacy(keys: list[str], start: int = 1) -> list[KeyEntry]:
    return [
        KeyEntry(f"key-{start + i}", Role.admin, frozenset(), digest_of(k))
        for i, k in enumerate(keys)
    ]


def parse_keys_text(path: Path, text: str) -> tuple[list[KeyEntry], list[str] | None]:
    """The entries of a keys file in the new form, or ``([], plain keys)`` in the old one.
    ``KeysFileError`` (one line) for anything else."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return [], _plain_lines(path, text)
    if not data:  # only comments, or empty
        return [], None
    if "key" in data:
        raise KeysFileError(f"{path}: holds a plain key (a `key` field): store its sha256 only")
    extra = sorted(set(data) - {"keys"})
    if extra:
        raise KeysFileError(f"{path}: unknown top-level field {extra[0]!r} (only [[keys]])")
    tables = data["keys"]
    if not isinstance(tables, list):
        raise KeysFileError(f"{path}: `keys` must be [[keys]] tables")
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for n, table in enumerate(tables, 1):
        entry = _entry(path, n, table)
        if entry.name in seen:
            raise KeysFileError(f"{path}: duplicate key name {entry.name!r}")
        seen.add(entry.name)
        entries.append(entry)
    return entries, None


def _entry(path: Path, n: int, table: Any) -> KeyEntry:
    where = f"{path}: [[keys]] #{n}"
    if not isinstance(table, dict):
        raise KeysFileError(f"{where}: not a table")
    if "key" in table:
        raise KeysFileError(f"{where}: holds a plain key (a `key` field): store its sha256 only")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise KeysFileError(f"{where}: unknown field {unknown[0]!r}")
    for required in ("name", "sha256"):
        if not isinstance(table.get(required), str):
            raise KeysFileError(f"{where}: `{required}` (a string) is required")
    try:
        name = check_name("principal", table["name"])
        role = Role.parse(str(table.get("role", "reader")))
        groups = table.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise KeysFileError(f"{where}: `groups` must be a list of strings")
        group_set = frozenset(check_name("group", g) for g in groups if g.strip())
    except (ValueError, AccessError) as exc:
        raise KeysFileError(f"{where}: {exc}") from None
    sha = table["sha256"].strip()
    if not _HEX64.match(sha):
        raise KeysFileError(f"{where} ({name}): sha256 must be 64 hex digits")
    return KeyEntry(name, role, group_set, bytes.fromhex(sha))


def _plain_lines(path: Path, text: str) -> list[str]:
    keys = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _FIELD_LINE.match(line) or len(line.split()) > 1:
            raise KeysFileError(
                f"{path}: line {n} is neither a [[keys]] table nor a plain key (a `key = ...` "
                "field holds a plain key: store its sha256 in a [[keys]] table)"
            )
        keys.append(line)
    return keys


def read_keys_file(path: Path) -> tuple[list[KeyEntry], list[str] | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeysFileError(f"{path}: the keys file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"{path}: cannot be read ({exc})") from None
    return parse_keys_text(path, text)


class KeyRing:
    """Every configured key: the old-form keys of ``RAG_API_KEYS`` and the keys file's."""

    def __init__(self, env_keys: list[str], path: Path | None) -> None:
        self.path = path
        self._env_keys = env_keys
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._mtime = self._stat()
        self.entries = self._load(warn=True)  # KeysFileError: start-up stops

    @property
    def configured(self) -> bool:
        return bool(self._env_keys) or self.path is not None

    def _stat(self) -> float | None:
        try:
            return os.stat(self.path).st_mtime if self.path else None
        except OSError:
            return None

    def _load(self, *, warn: bool) -> list[KeyEntry]:
        plain = list(self._env_keys)
        entries: list[KeyEntry] = []
        if self.path is not None:
            entries, file_plain = read_keys_file(self.path)
            plain += file_plain or []
        names = {e.name for e in entries}
        legacy = _legacy(plain)
        clash = sorted(names & {e.name for e in legacy})
        if clash:
            raise KeysFileError(f"{self.path}: name {clash[0]!r} is taken by an old-form key")
        if legacy and warn:
            log.warning(
                "%d API key(s) in the old form (RAG_API_KEYS or a plain keys file) are admins "
                "named key-1...: migrate to named keys with `python -m api keys add NAME "
                "--role ROLE` (RAG_API_KEYS_FILE in TOML, hashes only)",
                len(legacy),
            )
        return legacy + entries

    def _maybe_reload(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._checked < RECHECK_S:
            return
        with self._lock:
            self._checked = now
            mtime = self._stat()
            if mtime == self._mtime:
                return
            self._mtime = mtime
            try:
                self.entries = self._load(warn=False)
                log.info("keys file %s re-read: %d key(s)", self.path, len(self.entries))
            except KeysFileError as exc:
                self.entries = _legacy(self._env_keys)  # fail closed for the file's keys
                log.error("keys file re-read failed, its keys are refused until fixed: %s", exc)

    def lookup(self, presented: str) -> Principal | None:
        """The principal of ``presented``, or None. Constant time over every entry."""
        self._maybe_reload()
        digest = digest_of(presented)
        found: KeyEntry | None = None
        for entry in self.entries:  # no early exit
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry
        return found.principal() if found else None
