"""`python -m bench NAME [args]`: ingest, queue, retrieval, relevance, latency, budget, peer,
conversation, multihop, evaluate, access."""

from __future__ import annotations

import importlib
import logging
import sys

NAMES = [
    "ingest",
    "queue",
    "retrieval",
    "relevance",
    "latency",
    "budget",
    "peer",
    "conversation",
    "multihop",
    "evaluate",
    "access",
    "rerankers",
]


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in NAMES:
        print(f"usage: python -m bench {{{','.join(NAMES)}}} [options]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    importlib.import_module(f"bench.{sys.argv[1]}").main(sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
