"""Outermost ASGI guard: early size limit and a last-resort 500 without a trace.

A body declared larger than the limit is refused with 413 before any byte of
it is read. An exception nothing else handled becomes a bare RFC 6749
``server_error`` body (logged with its traceback, never sent).
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Guard"]

log = logging.getLogger("authsvc")

_SERVER_ERROR = json.dumps(
    {"error": "server_error", "error_description": "The server could not complete the request."}
).encode()
_TOO_LARGE = json.dumps(
    {"error": "invalid_request", "error_description": "The request body is too large."}
).encode()


class Guard:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body):
                await _send(send, 413, _TOO_LARGE, close=True)
                return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send(send, 500, _SERVER_ERROR)


async def _send(send: Send, status: int, body: bytes, close: bool = False) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
