"""Run ASGI apps on real sockets for tests, and a fault-injecting OpenAI-compatible server.

The fault server is only for failures (errors, stalls, cut streams, bad JSON, disconnect
tracking); every happy-path test talks to the real vLLM.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bench.services import free_port


@contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL."""
    port = port or free_port()
    from api.server import server_config

    server = uvicorn.Server(
        server_config(app, "127.0.0.1", port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _chunk(text: str | None = None, finish: str | None = None, usage: dict | None = None) -> str:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "fake",
        "choices": []
        if usage
        else [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


class FaultServer:
    """Modes (path prefix): ok, error500, slow, cut, badjson, drip. Records what happened."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.request_ids: list[str] = []
        self.disconnected = threading.Event()
        self.app = FastAPI()
        app = self.app

        @app.get("/{mode}/v1/models")
        async def models(mode: str):
            return {"data": [{"id": "fake", "max_model_len": 4096}]}

        @app.post("/{mode}/tokenize")
        async def tokenize(mode: str, request: Request):
            body = await request.json()
            text = " ".join(m["content"] for m in body["messages"])
            return {"count": len(text) // 3 + 10}

        @app.post("/{mode}/v1/chat/completions")
        async def chat(mode: str, request: Request):
            self.calls[mode] = self.calls.get(mode, 0) + 1
            self.request_ids.append(request.headers.get("x-request-id", ""))
            if mode == "error500":
                return JSONResponse({"error": "boom"}, status_code=500)
            if mode == "slow":
                await asyncio.sleep(30)
            return StreamingResponse(self._stream(mode), media_type="text/event-stream")

    async def _stream(self, mode: str):
        if mode == "badjson":
            yield "data: {not json\n\n"
            return
        yield _chunk("Hello ")
        if mode == "cut":
            yield _chunk("wor")
            return  # connection closes with no [DONE]
        if mode == "drip":
            try:
                for _ in range(200):
                    await asyncio.sleep(0.1)
                    yield _chunk("more ")
            except asyncio.CancelledError:
                self.disconnected.set()
                raise
        yield _chunk("world [1].", finish="stop")
        yield _chunk(usage={"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})
        yield "data: [DONE]\n\n"
