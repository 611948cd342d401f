"""The form endpoints straight to their handlers, past the framework's layers.

``POST /token``, ``/revoke`` and ``/introspect`` take no framework-parsed
parameters (they read their own form bodies), so routing, dependency
injection and the exception middleware add only cost on the busiest paths.
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

__all__ = ["FormEndpoints"]

Handler = Callable[[Request, Any], Awaitable[Response]]


class FormEndpoints:
    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
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
