"""Blocking and CPU work of the use cases, off the event loop, in bounded pools.

One event loop serves every request of the API: whatever runs on it stalls all the others
(``/healthz`` included) for as long as it takes. So no step of search or answer that
computes (counting tokens, escaping and rendering prompts, choosing sources, checking
citations) or blocks (query embedding, the embedded store) runs on it:

* ``cpu``: the answer path's CPU steps, at most ``RAG_CPU_WORKERS`` threads at once;
* ``run_search``: searches, at most ``RAG_SEARCH_WORKERS`` threads at once.

Two pools, so that heavy answers waiting their turn never hold a search back (and other
blocking work, such as listing documents, keeps the loop's default executor). Requests
beyond a pool's size wait in its queue, without holding the loop. The pools are the
process's; ``configure`` (the pipeline, from its settings) sizes them. Work keeps the
caller's context variables (the request id of log lines).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
_sizes = {"cpu": 4, "search": 8}


def configure(cpu_workers: int, search_workers: int) -> None:
    """Size the pools (a pool of another size is replaced; work in it finishes)."""
    with _lock:
        for name, size in (("cpu", cpu_workers), ("search", search_workers)):
            if _sizes[name] != size:
                _sizes[name] = size
                old = _pools.pop(name, None)
                if old is not None:
                    old.shutdown(wait=False)


def _pool(name: str) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(_sizes[name], thread_name_prefix=name)
        return pool


async def _run(name: str, func: Callable[..., T], *args: object) -> T:
    call = functools.partial(contextvars.copy_context().run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(_pool(name), call)


async def cpu(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in the CPU pool."""
    return await _run("cpu", func, *args)


async def run_search(func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` (a search: embedding, Qdrant) in the search pool."""
    return await _run("search", func, *args)
