"""Outermost ASGI guard: early size limits and a last-resort 500 without a trace.

A body declared larger than the limit is refused with 413 before any byte of
it is read. Headers over ``MAX_HEADER_BYTES`` in all are refused with 431:
uvicorn's h11 parser refuses a header block over 16 KiB only when it arrives
in pieces (one socket read of up to 256 KiB is parsed whole), so this is the
ceiling that always holds. Both close the connection. An exception nothing else handled becomes
a bare RFC 6749 ``server_error`` body (logged with its traceback, never sent).
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_HEADER_BYTES", "Guard"]

#: All request headers together (name, value and ": " / CRLF per line); as the body limit.
MAX_HEADER_BYTES = 64 * 1024

log = logging.getLogger("authsvc")

_SERVER_ERROR = json.dumps(
    {"error": "server_error", "error_description": "The server could not complete the request."}
).encode()
_TOO_LARGE = json.dumps(
    {"error": "invalid_request", "error_description": "The request body is too large."}
).encode()
_HEADERS_TOO_LARGE = json.dumps(
    {"error": "invalid_request", "error_description": "The request headers are too large."}
).encode()


class Guard:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body):
                await _send(send, 413, _TOO_LARGE, close=True)
                return
        if header_bytes > MAX_HEADER_BYTES:
            await _send(send, 431, _HEADERS_TOO_LARGE, close=True)
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
        (b"pragma", b"no-cache"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
