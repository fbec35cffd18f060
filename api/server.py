"""The uvicorn server the API runs under, with JSON errors even below the application.

uvicorn answers requests it cannot parse (malformed request lines, headers over h11's
16 KB limit such as a 1 MB Authorization header) itself, in plain text, before the app
sees them. The protocol class here answers those with the API's error shape instead.
"""

from __future__ import annotations

import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

_BAD_REQUEST = json.dumps(
    {
        "error": {
            "code": "bad_request",
            "message": "malformed HTTP request, or headers over the 16 KB limit",
        }
    }
).encode()


class JSONErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 (uvicorn's fixed text)
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"content-length", str(len(_BAD_REQUEST)).encode()),
        ]
        self.transport.write(
            self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
        )
        self.transport.write(self.conn.send(h11.Data(data=_BAD_REQUEST)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """One place that shapes uvicorn for ``python -m api`` and the tests."""
    return uvicorn.Config(app, host=host, port=port, http=JSONErrorH11Protocol, **options)
