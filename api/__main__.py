"""`python -m api`: serve the API and the search page with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from rag.settings import load_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    settings = load_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="info", timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
