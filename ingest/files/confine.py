"""Confinement: every file ingestion reads must resolve inside an allowed root.

A path is checked where it matters, on the file actually opened: the file is opened first
(without blocking on FIFOs), then the kernel's name for the open descriptor
(``/proc/self/fd/N``) is compared with the roots. A symbolic link swapped in between a check
and the open therefore cannot lead outside, and neither can a link anywhere in the path.
A file outside is a per-file failure whose reported path is the one inside the root (the
link), never the target.

Hard links: a hard link has no target to resolve, so one made inside a root to a file outside
it would pass the check above. The rule is therefore: a regular file with more than one link
(``st_nlink > 1``) is refused (``HardLinked``), since where its other names lie cannot be
known, unless the operator allows them (``RAG_INGEST_ALLOW_HARDLINKS=true``: every writer
below the roots is trusted not to link in files from outside).

The kernel's name for the descriptor is also the file's identity (``ConfinedFile.real``):
every alias of a file (a link, ``a/../a/x.txt``, ``/proc/self/root/...``) opens the same
name, so it is the same document (``ingest.files.identity``).
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


class HardLinked(Exception):
    """A regular file with more than one hard link, refused unless they are allowed."""

    def __init__(self, links: int) -> None:
        super().__init__(
            f"file has {links} hard links (another name may lie outside the allowed roots); "
            "refused (RAG_INGEST_ALLOW_HARDLINKS=true reads it)"
        )


@dataclass(frozen=True)
class ConfinedFile:
    """A file read inside the roots: its bytes and the real path of the file opened (the
    kernel's name for the descriptor, links and ``..`` resolved)."""

    data: bytes
    real: str


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


def read_confined(path: Path, roots: Roots, max_bytes: int, allow_hardlinks: bool = False) -> bytes:
    """The bytes of ``path`` if the opened file lies inside ``roots`` (``read_confined_file``)."""
    return read_confined_file(path, roots, max_bytes, allow_hardlinks).data


def read_confined_file(
    path: Path, roots: Roots, max_bytes: int, allow_hardlinks: bool = False
) -> ConfinedFile:
    """The bytes and real path of ``path`` if the opened file lies inside ``roots``.

    Raises ``OutsideRoots``, ``NotRegular``, ``HardLinked``, ``FileTooLarge`` or ``OSError``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        real = _real_name(fd, path)
        if not roots.contains(real):
            raise OutsideRoots(OUTSIDE)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular("not a regular file")
        if info.st_nlink > 1 and not allow_hardlinks:
            raise HardLinked(info.st_nlink)
        if info.st_size > max_bytes:
            raise FileTooLarge(info.st_size, max_bytes)
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > max_bytes:  # the file grew while being read
                raise FileTooLarge(size, max_bytes)
            chunks.append(chunk)
        return ConfinedFile(b"".join(chunks), real)
    finally:
        os.close(fd)


class FileTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"file is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit")
