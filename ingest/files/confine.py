"""Confinement: every file ingestion reads must resolve inside an allowed root.

A path is checked where it matters, on the file actually opened: the file is opened first
(without blocking on FIFOs), then the kernel's name for the open descriptor
(``/proc/self/fd/N``) is compared with the roots. A symbolic link swapped in between a check
and the open therefore cannot lead outside, and neither can a link anywhere in the path.
A file outside is a per-file failure whose reported path is the one inside the root (the
link), never the target.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

OUTSIDE = "outside the allowed roots"


class OutsideRoots(Exception):
    """The path resolves outside every allowed root (``path``: the one refused, as given,
    where a caller names it)."""

    def __init__(self, message: str = OUTSIDE, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class NoSuchPath(FileNotFoundError):
    """A path named for ingestion does not exist (``path``: as given)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no such file or folder: {path[:200]}")
        self.path = path


class NotRegular(Exception):
    """The path is not a regular file (a FIFO, a device, a socket)."""


@dataclass(frozen=True)
class Roots:
    """Resolved folders (or single files) below which reading is allowed."""

    paths: tuple[str, ...]

    @classmethod
    def of(cls, paths: Iterable[Path | str]) -> Roots:
        return cls(tuple(sorted({os.path.realpath(p) for p in paths})))

    def contains(self, real: str) -> bool:
        return any(real == root or real.startswith(root.rstrip("/") + "/") for root in self.paths)

    def check_folder(self, folder: Path) -> None:
        """Raise ``OutsideRoots`` when the folder resolves outside (checked before listing)."""
        if not self.contains(os.path.realpath(folder)):
            raise OutsideRoots(OUTSIDE)

    def admit(self, paths: Iterable[Path | str]) -> list[Path]:
        """The paths named for ingestion (the API's, the queue's), made absolute, each
        checked to resolve inside a root and then to exist. ``OutsideRoots`` comes first,
        so nothing is revealed about a path outside (not even whether it exists), then
        ``NoSuchPath``; both name the path as given."""
        admitted = []
        for raw in paths:
            path = Path(raw).absolute()
            if not self.contains(os.path.realpath(path)):
                raise OutsideRoots(OUTSIDE, str(raw))
            if not path.exists():
                raise NoSuchPath(str(raw))
            admitted.append(path)
        return admitted


def _real_name(fd: int, path: Path) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no procfs: resolve the name instead (a narrower guarantee)
        return os.path.realpath(path)


def read_confined(path: Path, roots: Roots, max_bytes: int) -> bytes:
    """The bytes of ``path`` if the opened file lies inside ``roots``.

    Raises ``OutsideRoots``, ``NotRegular``, ``FileTooLarge`` or ``OSError``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not roots.contains(_real_name(fd, path)):
            raise OutsideRoots(OUTSIDE)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular("not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(info.st_size, max_bytes)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > max_bytes:  # the file grew while being read
                raise FileTooLarge(size, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class FileTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit")
