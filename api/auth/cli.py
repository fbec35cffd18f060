"""``python -m api keys add|list|revoke``: manage the named keys of ``RAG_API_KEYS_FILE``.

Invariants: the file holds hashes only (the new key is printed once, alone on the last line
of stdout, and never written); every write is atomic (a temporary file in the same folder,
mode 0600, then ``os.replace``), so the API never reads half a file; errors are one line on
stderr: exit 1 for a refused operation (duplicate or unknown name), 2 for a setup problem
(no ``RAG_API_KEYS_FILE``, a malformed or old-form file). A running API sees changes when
the file's modification time changes (``api.auth.keys``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

from api.auth.keys import KeyEntry, KeysFileError, digest_of, read_keys_file
from rag.access import AccessError, Role
from rag.access.acl import check_name

PREFIX = "rag_"
HEADER = (
    "# API keys of the RAG service: hashes only (`python -m api keys add|list|revoke`).\n"
    "# Removing a table revokes its key.\n"
)


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _path() -> Path:
    value = os.environ.get("RAG_API_KEYS_FILE", "").strip()
    if not value:
        raise CliError("RAG_API_KEYS_FILE is not set: it names the keys file to manage", 2)
    return Path(value).expanduser()


def _read(path: Path) -> list[KeyEntry]:
    if not path.exists():
        return []
    try:
        entries, plain = read_keys_file(path)
    except KeysFileError as exc:
        raise CliError(str(exc), 2) from None
    if plain:
        raise CliError(
            f"{path}: holds plain keys (the old form): move them out (or revoke them) before "
            "managing named keys here",
            2,
        )
    return entries


def render(entries: list[KeyEntry]) -> str:
    out = [HEADER]
    for e in entries:
        out.append(
            "\n[[keys]]\n"
            f"name = {json.dumps(e.name)}\n"
            f"role = {json.dumps(e.role.value)}\n"
            f"groups = {json.dumps(sorted(e.groups))}\n"
            f'sha256 = "{e.digest.hex()}"\n'
        )
    return "".join(out)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add(name: str, role: str, groups: str) -> int:
    path = _path()
    try:
        name = check_name("principal", name)
        parsed_role = Role.parse(role)
        group_set = frozenset(check_name("group", g) for g in groups.split(",") if g.strip())
    except (ValueError, AccessError) as exc:
        raise CliError(str(exc), 1) from None
    entries = _read(path)
    if any(e.name == name for e in entries):
        raise CliError(f"a key named {name!r} already exists in {path}", 1)
    key = PREFIX + secrets.token_urlsafe(32)
    entries.append(KeyEntry(name, parsed_role, group_set, digest_of(key)))
    write_atomic(path, render(entries))
    groups_text = ",".join(sorted(group_set)) or "-"
    print(f"added {name} (role {parsed_role.value}, groups {groups_text}) to {path}")
    print("the key (shown once, only its hash is stored):")
    print(key)
    return 0


def list_keys() -> int:
    entries = _read(_path())
    for e in entries:
        print(f"{e.name}\t{e.role.value}\t{','.join(sorted(e.groups)) or '-'}")
    return 0


def revoke(name: str) -> int:
    path = _path()
    entries = _read(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        raise CliError(f"no key named {name!r} in {path}", 1)
    write_atomic(path, render(kept))
    print(f"revoked {name}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api keys", description="manage the named API keys of RAG_API_KEYS_FILE"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_add = sub.add_parser("add", help="create a key, print it once")
    p_add.add_argument("name")
    p_add.add_argument("--role", default="reader", help="reader | ingester | admin")
    p_add.add_argument("--groups", default="", help="comma-separated")
    sub.add_parser("list", help="names, roles and groups (never keys)")
    p_revoke = sub.add_parser("revoke", help="remove a key")
    p_revoke.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            return add(args.name, args.role, args.groups)
        if args.command == "list":
            return list_keys()
        return revoke(args.name)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
