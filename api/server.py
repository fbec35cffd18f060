"""The uvicorn server the API runs under: JSON errors even below the application, and
deadlines on what a client sends, so that one client cannot hold the service.

uvicorn answers requests it cannot parse (malformed request lines, headers over h11's
16 KB limit such as a 1 MB Authorization header) itself, in plain text, before the app
sees them; the protocol class here answers those with the API's error shape instead.

uvicorn bounds only the idle time between requests (keep-alive). The protocol adds, per
connection (``ApiSettings``):

- a request head (request line and headers) must be complete within ``header_timeout_s``
  of its first byte, or of the connection's opening: an absolute deadline, which bytes
  dripped in one at a time do not extend (408, then closed);
- a request body may pause at most ``body_timeout_s`` between bytes (408 if no response has
  started, then closed; the handler sees a disconnect). Time the server itself stops
  reading (flow control while a handler is busy, ``Expect: 100-continue`` not yet answered)
  does not count against the client;
- at most ``max_connections`` connections are open at once: one beyond is answered 503 and
  closed at once, before it costs anything else.

No limit applies while a handler runs or a response streams (answers take minutes). A
reverse proxy in production adds what a single process cannot: TLS, rate limits per
client, limits per client address (README, "Security and limits").
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from http import HTTPStatus
from typing import Any, Literal

import h11
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from rag.settings import ApiSettings

log = logging.getLogger(__name__)


def _error_json(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _raw_response(status: int, code: str, message: str) -> bytes:
    """A whole response written below h11, for connections h11 has no request of."""
    body = _error_json(code, message)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


_BAD_REQUEST = _error_json("bad_request", "malformed HTTP request, or headers over the 16 KB limit")


class _Tally:
    """One warning per kind at most every ``every_s``, with the count since the last one:
    under a flood of slow clients the log gets a line every few seconds, not one each."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.counts: dict[str, int] = {}
        self.last: dict[str, float] = {}

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        now = time.monotonic()
        if now - self.last.get(kind, -self.every_s) >= self.every_s:
            log.warning("%s (%d since the last report)", kind, self.counts[kind])
            self.last[kind], self.counts[kind] = now, 0


_tally = _Tally()
_DEFAULT_LIMITS = ApiSettings.model_validate({})


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus the limits :class:`GuardedH11Protocol` enforces."""

    def __init__(self, app: Any, *, limits: ApiSettings, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with JSON errors and the deadlines of the module notes.

    One timer per connection at most: the head deadline while a request head is awaited
    (uvicorn's keep-alive timer covers the idle time between requests), the body timer
    while a request body is read, none while the application works on the request.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits if isinstance(config, ServerConfig) else _DEFAULT_LIMITS
        self.timer: asyncio.TimerHandle | None = None
        self.phase: Literal["head", "body"] | None = None  # what the timer watches
        self.head_bytes = False  # bytes of the awaited request head have arrived
        self.last_data = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _tally.add(
                f"refused connections over RAG_MAX_CONNECTIONS={self.limits.max_connections}"
            )
            self.transport.write(
                _raw_response(503, "overloaded", "too many connections; try again shortly")
            )
            self.transport.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self.head_bytes = True
        self.last_data = self.loop.time()
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.head_bytes = False
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel()  # the connection is no longer ours to time
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 (uvicorn's fixed text)
        self._cancel()
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

    # --- the timers ---------------------------------------------------------------------
    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.phase = None, None

    def _watch(self) -> None:
        """Set the timer for what the connection waits for now (see the class notes)."""
        state = self.conn.their_state
        if self.transport.is_closing():
            self._cancel()
        elif state is h11.IDLE:
            if self.timeout_keep_alive_task is not None:
                self._cancel()  # idle between requests: uvicorn's keep-alive timer
            elif self.phase != "head":  # absolute: more bytes do not extend it
                self._cancel()
                self.phase = "head"
                self.timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)
        elif state is h11.SEND_BODY:
            if self.phase != "body":  # re-armed lazily from last_data, not per chunk
                self._cancel()
                self.phase = "body"
                self.timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
        else:
            self._cancel()  # the request is in: the application's time

    def _head_late(self) -> None:
        self.timer, self.phase = None, None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        _tally.add(f"closed connections without a request head in {self.limits.header_timeout_s} s")
        if self.head_bytes:
            message = f"no complete request head within {self.limits.header_timeout_s} s"
            self.transport.write(_raw_response(408, "request_timeout", message))
        self.transport.close()

    def _body_late(self) -> None:
        self.timer, self.phase = None, None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        now, cycle = self.loop.time(), self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self.last_data = now  # waiting on us, not on the client
        idle = now - self.last_data
        if idle < self.limits.body_timeout_s:
            self.phase = "body"
            self.timer = self.loop.call_later(self.limits.body_timeout_s - idle, self._body_late)
            return
        _tally.add(f"closed connections whose body paused over {self.limits.body_timeout_s} s")
        if cycle is not None and not cycle.response_started:
            message = f"the request body paused for over {self.limits.body_timeout_s} s"
            self.transport.write(_raw_response(408, "request_timeout", message))
        if cycle is not None:  # as if the client had gone: the handler's sends are dropped
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def raise_open_file_limit(max_connections: int) -> None:
    """Lift the soft limit on open files towards the hard one, so that ``max_connections``
    sockets fit besides the store's and the models' files (a warning where they cannot)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            log.warning(
                "open file limit %d is low for RAG_MAX_CONNECTIONS=%d", target, max_connections
            )


def server_config(
    app: Any, host: str, port: int, limits: ApiSettings | None = None, **options: Any
) -> ServerConfig:
    """One place that shapes uvicorn for ``python -m api`` and the tests (``limits``: the
    defaults of ``ApiSettings`` when not given)."""
    limits = limits or _DEFAULT_LIMITS
    return ServerConfig(
        app,
        host=host,
        port=port,
        http=GuardedH11Protocol,
        limits=limits,
        timeout_keep_alive=limits.keepalive_timeout_s,
        # uvicorn counts the asking connection too, and also bounds running handlers
        # (those of clients gone but not finished): 503 beyond.
        limit_concurrency=limits.max_connections + 1,
        **options,
    )
