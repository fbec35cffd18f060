"""Work prepared ahead on a second thread, in order, a bounded number of items ahead.

The ``Indexer`` reads, parses and chunks the next files here while its own thread embeds
and stores, so the pipeline is as fast as its slowest stage, not their sum.

Invariants: results come in the order of the items; at most ``depth`` wait (bounded memory);
an exception in ``prepare`` (a bug) is re-raised in the consumer, which never hangs; when the
consumer stops early, the second thread finishes the item it is on and prepares no other,
and whatever was prepared but not consumed is dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(
    items: Sequence[T],
    prepare: Callable[[T], R],
    depth: int,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[tuple[T, R], None, None]:
    """``(item, prepare(item))`` for each item, ``prepare`` running on a second thread up to
    ``depth`` items ahead; ``should_stop`` ends the preparing early."""
    ready: queue.Queue[tuple[T, R] | None] = queue.Queue(depth)
    halt = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                if halt.is_set() or (should_stop and should_stop()):
                    break
                result = prepare(item)
                while not halt.is_set():
                    try:
                        ready.put((item, result), timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # a bug: the consumer re-raises it, never hangs
            errors.append(exc)
        finally:
            ready.put(None)  # the end, also after an unexpected error

    producer = threading.Thread(target=produce, name="ingest-prepare", daemon=True)
    producer.start()
    try:
        while (entry := ready.get()) is not None:
            yield entry
        if errors:
            raise errors[0]
    finally:
        halt.set()  # the consumer stopped early: let the producer finish its item
        while producer.is_alive():
            try:
                ready.get(timeout=0.5)  # unblock it; what it prepared is dropped
            except queue.Empty:
                continue
        producer.join()
