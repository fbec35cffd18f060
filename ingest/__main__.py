"""`python -m ingest PATH...`: bulk-ingest files and folders, print a summary.

With RAG_BROKER_URL set, the paths become a job on the ingestion queue (files under the
shared roots only) and a progress bar follows it until done (`--no-wait`: print the job id
and return); `python -m ingest --worker` consumes that queue. With RAG_API_URL set, the
paths are handed to that running API (which owns an embedded store). Otherwise (or with
`--local`) the store is opened here.

Access (``ingest.files.access``): ``--collection``, ``--groups`` and ``--users`` are stamped
on every document of the run, over any ``.rag-access.toml`` in the folders (keys not given
come from those files, then from the stored document, then from the defaults). The CLI runs
as the operator: it may grant any group.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.cli_progress import TerminalProgress
from rag.settings import load_settings

if TYPE_CHECKING:
    from ingest.indexer import Indexer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (recursive)")
    parser.add_argument(
        "--prune",
        action="store_true",
        help="remove stored documents under PATH whose files are gone",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument(
        "--recreate",
        action="store_true",
        help="drop the collections first (after a model or schema change)",
    )
    parser.add_argument(
        "--local", action="store_true", help="open the store here even when RAG_API_URL is set"
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep running: re-scan PATH every --interval seconds",
    )
    parser.add_argument("--interval", type=float, default=10.0)
    access = parser.add_argument_group("access (over .rag-access.toml files)")
    access.add_argument("--collection", help="the documents' collection")
    access.add_argument(
        "--groups", help="comma-separated groups that may read them (an empty string: none)"
    )
    access.add_argument(
        "--users", help="comma-separated users that may read them (an empty string: none)"
    )
    queue = parser.add_argument_group("ingestion queue (RAG_BROKER_URL)")
    queue.add_argument(
        "--worker", action="store_true", help="consume the queue (owns the store and the embedder)"
    )
    queue.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="tasks at once (default RAG_QUEUE_CONCURRENCY)",
    )
    queue.add_argument(
        "--no-wait", action="store_true", help="enqueue, print the job id and return"
    )
    queue.add_argument("--job", metavar="ID", help="show a queued job's counts and failures")
    queue.add_argument(
        "--dead-letters",
        action="store_true",
        help="list the most recent dead letters (files given up, with reasons)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ingest.files.access import JobAccess, split_names
    from rag.access import AccessError

    try:
        args.access = JobAccess(
            collection=args.collection,
            groups=split_names([args.groups] if args.groups is not None else None),
            users=split_names([args.users] if args.users is not None else None),
            owner="cli",
        )
    except AccessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    queue_mode = bool(settings.broker_url) and not args.local
    if args.worker or args.job or args.dead_letters or (queue_mode and not args.watch):
        from ingest.queue.cli import queue_main

        return queue_main(settings, args)
    if not args.paths:
        print("error: name at least one file or folder", file=sys.stderr)
        return 2
    summary: Mapping[str, Any]  # the --json shape (SummaryJSON), here or from the API
    if settings.api_url and not args.local:
        from ingest.remote import RemoteError, ingest_via_api

        if args.recreate:
            print("error: --recreate needs --local (stop the API first)", file=sys.stderr)
            return 2
        try:
            summary = ingest_via_api(
                settings.remote, args.paths, prune=args.prune, access=args.access
            )
        except RemoteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        from ingest.indexer import Indexer
        from rag.wiring import StartupError, open_index

        try:
            index = open_index(settings, recreate=args.recreate)
        except StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        store = index.store
        try:
            indexer = Indexer(settings, index.embedder, store)
        except StartupError as exc:  # OCR's languages missing
            store.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.watch:
            return _watch(indexer, args)
        with TerminalProgress(enabled=not args.json and sys.stderr.isatty()) as progress:
            summary = indexer.run(
                args.paths, prune=args.prune, progress=progress, access=args.access
            ).as_dict()
        store.close()
        _audit(settings, args, summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 1 if summary["failed"] else 0


def _audit(settings: Any, args: argparse.Namespace, summary: Mapping[str, Any]) -> None:
    """The audit line of a local run (``rag.audit``): the operator, as the local admin."""
    import getpass

    from rag.access import Principal, Role
    from rag.audit import audit_log

    def count(key: str) -> int:
        value = summary.get(key, 0)
        return len(value) if isinstance(value, list) else int(value or 0)

    audit_log(settings).record(
        "ingest",
        principal=Principal(name=getpass.getuser(), role=Role.admin, source="cli"),
        route="cli",
        after={
            "paths": [str(p) for p in args.paths],
            "prune": bool(args.prune),
            **{k: count(k) for k in ("ingested", "unchanged", "failed", "removed")},
        },
    )


def _watch(indexer: Indexer, args: argparse.Namespace) -> int:
    """Re-scan loop; SIGTERM/SIGINT finish the current file, then exit cleanly."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log = logging.getLogger("ingest.watch")
    log.warning("watching %s every %.0f s", ", ".join(map(str, args.paths)), args.interval)
    while not stop.is_set():
        summary = indexer.run(
            args.paths, prune=args.prune, should_stop=stop.is_set, access=args.access
        )
        if summary.ingested or summary.failed or summary.removed:
            print(json.dumps(summary.as_dict()), flush=True)
        stop.wait(args.interval)
    indexer.store.close()
    return 0


def _print_summary(s: Mapping[str, Any]) -> None:
    """The ``--json`` shape in lines: ``Summary.as_dict()`` here, or the summary of a job
    the API ran (a queued job's has no stages, warnings or rate)."""
    changed = s.get("access_changed", 0)
    print(
        f"files seen {s['files_seen']}, ingested {s['ingested']}, unchanged {s['unchanged']}"
        + (f" (access changed {changed})" if changed else "")
        + f", removed {s.get('removed', 0)}, failed {len(s['failed'])}"
    )
    print(
        f"parents {s['parents']}, passages {s['passages']}, tokens {s.get('tokens', 0)}, "
        f"{s['seconds']:.1f} s ({s.get('tokens_per_second', 0):.0f} tokens/s)"
    )
    stages = s.get("stages") or {}
    if stages:
        print("stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    for warning in s.get("warnings") or []:
        print(f"WARNING {warning['path']}: {warning['warning']}")
    for failure in s["failed"]:
        print(f"FAILED {failure['path']}: {failure['error']}")


if __name__ == "__main__":
    sys.exit(main())
