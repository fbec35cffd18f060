"""The parser's processes: how much memory they hold together, and that none outlives its
owner.

The parse sandbox's child runs Tesseract as processes of its own, so the memory bound is on
the whole tree below the child (``tree_rss_mb``), not the child alone: a 225 M-pixel page
made Tesseract take 2.7 GB beside a child well under its limit.

No orphans: a process that owns a ``ParseSandbox`` (a queue worker, the API) may be killed
with SIGKILL, which gives it no chance to stop its child. So the child watches its parent
(``watch_parent``: the end of a pipe only the parent holds, as ``multiprocessing`` spawns it)
and, once the parent is gone, kills its own process group, Tesseract included. Tesseract
processes also get ``PR_SET_PDEATHSIG`` (``die_with_parent``, run between fork and exec): the
kernel kills them when the thread that started them ends, which it does only after they end
unless the child itself dies. ``PR_SET_PDEATHSIG`` is not used for the child: its parent
thread is the ingest run's prefetch thread, which ends after each run.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
from multiprocessing.connection import wait

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only


def rss_mb(pid: int) -> float:
    """Resident memory of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (those of every thread: a thread starts Tesseract)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it, together (the processes below
    are found through ``/proc/PID/task/TID/children``; a kernel without it counts ``pid``
    alone)."""
    total, stack, seen = 0.0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        total += rss_mb(current)
        stack.extend(children(current))
    return total


def die_with_parent(parent: int) -> None:
    """In a process between fork and exec (``preexec_fn``; ``parent``: the pid that forks
    it, taken before the fork): SIGKILL once the thread that started it ends. Only a call
    into libc, already loaded: nothing here may fork or lock."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call: nothing would signal us
        os._exit(1)


def watch_parent(interval_s: float = 1.0) -> None:
    """In the sandbox's child (spawned by ``multiprocessing``): kill this process group once
    the parent process is gone, however it ended."""
    parent = mp.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    first = os.getppid()

    def watch() -> None:
        while True:
            if sentinel is None:
                time.sleep(interval_s)
            elif wait([sentinel], timeout=interval_s):
                break  # the parent's end of the pipe closed: it exited or was killed
            if os.getppid() != first:
                break  # adopted by another process: the parent is gone
        if os.getpgrp() == os.getpid():  # a group of its own: Tesseract goes with it
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
