"""CORS (Fetch standard) for the endpoints a browser app calls directly.

The token, revocation and userinfo endpoints answer the origins clients
registered with ``--web-origin`` (that exact origin, never ``*``, never with
credentials: tokens travel in bodies and Authorization headers, not cookies).
The JWKS and the discovery documents are public: ``*``. Preflights are
answered here, before routing. Every other path gets no CORS headers at all:
the hosted pages are navigated to, never fetched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authsvc.api.scope_headers import raw_header

__all__ = ["ALLOWED_HEADERS", "Cors"]

ALLOWED_HEADERS = "Authorization, DPoP, Content-Type"
_EXPOSED = "WWW-Authenticate, DPoP-Nonce, Retry-After"
_MAX_AGE = "600"


class Cors:
    def __init__(
        self,
        app: ASGIApp,
        *,
        public: frozenset[str],
        registered: frozenset[str],
        origins: Callable[[Scope], Awaitable[frozenset[str]]],
    ) -> None:
        self.app = app
        self.public = public  # paths open to every origin
        self.registered = registered  # paths open to the registered web origins
        self.origins = origins  # the registered web origins, from the running service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (path not in self.public and path not in self.registered):
            await self.app(scope, receive, send)
            return
        raw_origin = raw_header(scope, b"origin")
        if raw_origin is None:
            await self.app(scope, receive, send)
            return
        origin = raw_origin.decode("latin-1")
        if path in self.public:
            allow: str | None = "*"
        else:
            allow = origin if origin in await self.origins(scope) else None
        if scope["method"] == "OPTIONS" and raw_header(scope, b"access-control-request-method") is not None:
            await self._preflight(send, allow, "GET, HEAD" if path in self.public else "GET, POST")
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and allow is not None:
                raw = list(message.get("headers", []))
                raw.append((b"access-control-allow-origin", allow.encode("latin-1")))
                raw.append((b"access-control-expose-headers", _EXPOSED.encode()))
                if allow != "*":
                    raw.append((b"vary", b"Origin"))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(send: Send, allow: str | None, methods: str) -> None:
        raw = [(b"content-length", b"0")]
        if allow is not None:
            raw += [
                (b"access-control-allow-origin", allow.encode("latin-1")),
                (b"access-control-allow-methods", methods.encode()),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", _MAX_AGE.encode()),
            ]
            if allow != "*":
                raw.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": 204 if allow else 403, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
