"""Walk the paths an operator names, safely: symlink loops, broken links, unreadable folders.

Problems found while walking are reported like parse failures (path + one-line reason)
instead of aborting the run or being silently skipped. A folder reached through a link that
resolves outside the allowed roots is reported (by its path inside the root) and not entered;
files are checked again when they are opened (``ingest.files.confine``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.files.access import ACCESS_FILE
from ingest.files.confine import OutsideRoots, Roots


@dataclass(frozen=True)
class WalkProblem:
    path: Path
    reason: str


def iter_files(root: Path, roots: Roots | None = None) -> Iterator[Path | WalkProblem]:
    """Yield files under ``root`` (or ``root`` itself), following links but never twice and
    never out of ``roots`` (default: ``root`` itself)."""
    allowed = roots or Roots.of([root])
    if root.is_symlink() and not root.exists():
        yield WalkProblem(root, "broken symbolic link")
        return
    if not root.exists():
        yield WalkProblem(root, "no such file or folder")
        return
    if root.is_file():
        if root.name != ACCESS_FILE:  # access files are read for access, never ingested
            yield root
        return
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            allowed.check_folder(folder)
        except OutsideRoots as exc:
            yield WalkProblem(folder, str(exc))
            continue
        try:
            st = folder.stat()
        except OSError as exc:
            yield WalkProblem(folder, f"cannot open folder: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            yield WalkProblem(folder, "symbolic link loop (folder already visited)")
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield WalkProblem(folder, f"cannot list folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue  # hidden files and folders (.git, editor swap files, ACCESS_FILE)
            try:
                if entry.is_dir(follow_symlinks=True):
                    subfolders.append(path)
                elif entry.is_file(follow_symlinks=True):
                    yield path
                elif entry.is_symlink():
                    yield WalkProblem(path, "broken symbolic link")
                else:
                    yield WalkProblem(path, "not a regular file")
            except OSError as exc:
                yield WalkProblem(path, f"cannot inspect: {exc.strerror or exc}")
        stack.extend(reversed(subfolders))


def walk_all(roots: Iterable[Path], confinement: Roots) -> tuple[list[Path], list[WalkProblem]]:
    """The files under each of ``roots`` in turn (as ``iter_files`` finds them, all confined
    to ``confinement``), and the problems met on the way."""
    files: list[Path] = []
    problems: list[WalkProblem] = []
    for root in roots:
        for item in iter_files(root, confinement):
            if isinstance(item, WalkProblem):
                problems.append(item)
            else:
                files.append(item)
    return files, problems
