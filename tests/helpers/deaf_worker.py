"""``python -m ingest --worker`` whose first consumer is left deaf the way Celery can leave
one after a broker reconnect: connected and alive, but no longer popping the queue (Celery's
own ``cancel_task_queue``, on its ``worker_ready`` signal, or with ``DEAF_WHEN=task`` once
its first task starts, so a task runs while it is deaf). This is the fault the watchdog
(``ingest.queue.watchdog``) exists for; its re-exec starts the plain ``python -m ingest``,
which listens. Run as ``python -m tests.helpers.deaf_worker --worker ...``."""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.signals import task_prerun, worker_ready

from ingest.__main__ import main
from rag.settings import load_settings

_consumer: list[Any] = []


@worker_ready.connect
def _deafen(sender: Any = None, **_: Any) -> None:
    _consumer.append(sender)
    if os.environ.get("DEAF_WHEN") != "task":
        sender.cancel_task_queue(load_settings().queue_name)


@task_prerun.connect
def _deafen_at_the_first_task(**_: Any) -> None:
    if os.environ.get("DEAF_WHEN") == "task" and len(_consumer) == 1:
        _consumer.append(True)
        _consumer[0].cancel_task_queue(load_settings().queue_name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
