"""Parsing in a child process, so that a runaway parse can be stopped.

unstructured and the libraries under it (python-docx, lxml, pdfminer) have no time or memory
limits of their own: a few KB of hostile DOCX kept a process at 100% CPU for minutes. Here the
parse runs in a long-lived child process (spawned once, reused file after file) while the
caller watches the clock and the resident memory of the child and its Tesseract processes
(``processes.tree_rss_mb``). The child is killed (SIGKILL, its whole process group) when a
parse makes no progress for ``Limits.timeout_s`` (each OCRed page is progress), when it has
run ``Limits.max_wall_s`` in all whatever its progress, or past ``Limits.max_memory_mb``; the
file fails with a one-line reason, and a fresh child serves the next file. A child that
crashes (a segfault in a C library) is reported the same way. A child whose owner dies
(SIGKILL included) kills itself and its Tesseract processes (``processes.watch_parent``).
Checks that need no parser (size, confinement, zip bombs) run before.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.parsing.dispatch import parse_file
from ingest.parsing.limits import Limits, ParseFailure
from ingest.parsing.processes import tree_rss_mb, watch_parent
from rag.documents import ParsedDocument

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 300.0  # spawning and importing unstructured, on a loaded 2-core machine
_MEMORY_EVERY_S = 0.1  # how often the process tree's memory is summed


def _child(conn: Connection, use_spacy: bool) -> None:
    """The child's loop: (path, data, digest, limits) in, ("ok", doc) or ("fail", why) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the child ends
    os.setpgrp()  # its own process group: a kill also stops the Tesseract processes it runs
    watch_parent()  # the owner killed (even with SIGKILL): this group ends too
    from ingest.parsing.dispatch import warm_up

    warm_up(use_spacy)  # module loading is not a file's parse time
    conn.send(("ready", os.getpid()))
    while True:
        try:
            path, data, digest, limits = conn.recv()
        except (EOFError, OSError):
            return

        def alive() -> None:  # a page was OCRed: the parent extends the deadline
            conn.send(("heartbeat", None))

        try:
            reply: tuple[str, Any] = (
                "ok",
                parse_file(Path(path), data, digest, limits, heartbeat=alive),
            )
        except ParseFailure as exc:
            reply = ("fail", str(exc))
        except MemoryError:
            reply = ("fail", "parser ran out of memory")
        except Exception as exc:  # a library bug: report it as this file's failure
            reply = (
                "fail",
                f"parser error: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
            )
        del data
        conn.send(reply)


class ParseSandbox:
    """One parser child at a time; ``parse`` is safe to call from several threads."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")  # no fork of a process with model threads
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self.restarts = 0
        weakref.finalize(self, ParseSandbox._stop, self.__dict__)

    _shared: ParseSandbox | None = None
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls) -> ParseSandbox:
        """The process-wide sandbox (a child is expensive to start: unstructured's imports)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def parse(self, path: Path, data: bytes, digest: str, limits: Limits) -> ParsedDocument:
        with self._lock:
            conn, proc = self._ensure(limits.use_spacy)
            try:
                conn.send((str(path), data, digest, limits))
            except (BrokenPipeError, OSError) as exc:
                self._kill()
                raise ParseFailure("parser process is gone; retry the file") from exc
            started = progress = time.monotonic()
            measured = 0.0
            while True:
                if conn.poll(0.05):
                    try:
                        kind, value = conn.recv()
                    except (EOFError, OSError) as exc:
                        self._kill()
                        raise ParseFailure("parser crashed while answering") from exc
                    if kind != "heartbeat":
                        break
                    # Each OCRed page is progress (a page has its own Tesseract limit): a
                    # long scan goes on, a stalled parse is still stopped after timeout_s.
                    progress = time.monotonic()
                    continue
                now = time.monotonic()
                if not proc.is_alive():
                    code = proc.exitcode
                    self._kill()
                    raise ParseFailure(f"parser crashed (exit code {code})")
                if now - started > limits.max_wall_s:
                    self._kill()
                    raise ParseFailure(
                        f"parsing took longer than {limits.max_wall_s:g} s in all; "
                        "stopped (RAG_PARSE_MAX_WALL_S)"
                    )
                if now - progress > limits.timeout_s:
                    self._kill()
                    raise ParseFailure(
                        f"parsing took longer than {limits.timeout_s:g} s; "
                        "stopped (RAG_PARSE_TIMEOUT_S)"
                    )
                if now - measured >= _MEMORY_EVERY_S:
                    measured = now
                    if tree_rss_mb(proc.pid) > limits.max_memory_mb:
                        self._kill()
                        raise ParseFailure(
                            f"parsing used more than {limits.max_memory_mb} MB of "
                            "memory; stopped (RAG_PARSE_MAX_MEMORY_MB)"
                        )
            if kind == "ok":
                return value
            raise ParseFailure(value)

    def close(self) -> None:
        with self._lock:
            ParseSandbox._stop(self.__dict__)

    # --- the child -----------------------------------------------------------------------
    def _ensure(self, use_spacy: bool) -> tuple[Connection, Any]:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn, self._proc
        self._kill()
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child, args=(child, use_spacy), daemon=True, name="rag-parser"
        )
        proc.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_S):
            proc.kill()
            raise RuntimeError("the parser process did not start")
        try:
            parent.recv()
        except EOFError as exc:
            raise RuntimeError(
                f"the parser process failed to start (exit code {proc.exitcode})"
            ) from exc
        self._proc, self._conn = proc, parent
        return parent, proc

    def _kill(self) -> None:
        if self._proc is not None:
            self.restarts += 1
        ParseSandbox._stop(self.__dict__)

    @staticmethod
    def _stop(state: dict[str, Any]) -> None:
        proc, conn = state.get("_proc"), state.get("_conn")
        state["_proc"] = state["_conn"] = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                try:  # the child and its Tesseract processes (one process group)
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.kill()
            proc.join(timeout=10)
