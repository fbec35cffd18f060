"""`python -m api`: serve the API and the search page with uvicorn; `python -m api keys ...`:
manage the named API keys (``api.auth.cli``)."""

from __future__ import annotations

import sys

import uvicorn

from api.app import create_app
from api.auth import AuthConfigError
from api.observability import configure_logging
from api.security import UnsafeBind, check_bind_safety
from api.server import raise_open_file_limit, server_config
from rag.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        from api.auth.cli import main as keys_main

        return keys_main(argv[1:])
    settings = load_settings()
    configure_logging(settings.log_json)
    try:
        check_bind_safety(settings)
    except UnsafeBind as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.ocr:
        from ingest.parsing.ocr import OcrUnavailable, check_languages

        try:
            check_languages(settings.ocr_languages)
        except OcrUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        app = create_app(settings)  # reads the keys file and the JWKS
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    raise_open_file_limit(settings.max_connections)
    # uvicorn finishes in-flight requests on SIGTERM (up to the graceful timeout); the
    # lifespan then stops the ingest worker after its current file.
    uvicorn.Server(
        server_config(
            app,
            settings.api_host,
            settings.api_port,
            settings.api,
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=30,
        )
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
