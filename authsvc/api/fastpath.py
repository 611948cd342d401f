"""The busiest endpoints straight to their handlers, past the framework's layers.

``POST /token``, ``/revoke``, ``/introspect`` and ``GET /users/me`` take no
framework-parsed parameters (they read their own form bodies and headers), so
routing, dependency injection and the exception middleware add only cost.
This middleware calls the same handler functions the routes declare (the
routes stay for the OpenAPI document) and maps exceptions through the app's
own registered handlers, so the answers are identical either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DirectEndpoints"]

Handler = Callable[[Request, Any], Awaitable[Response]]


class DirectEndpoints:
    def __init__(self, app: ASGIApp, handlers: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)  # (method, path) -> handler(request, services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        application = scope["app"]
        request = Request(scope, receive)
        try:
            response = await handler(request, application.state.services)
        except Exception as exc:
            on_error = _handler_for(application.exception_handlers, exc)
            if on_error is None:
                raise
            response = await on_error(request, exc)
        await response(scope, receive, send)


def _handler_for(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        if kind in handlers:
            return handlers[kind]
    return None
