"""create_app(settings): the ASGI application and its lifespan.

The application is a Starlette app: the routes are the one table of
``api.endpoints`` (made into plain routes once the lifespan has built the
process's services), behind ``Guard`` (size limits, the last-resort JSON 500,
in place of Starlette's ``ServerErrorMiddleware``), ``MetricsMiddleware``
(request ids, latency), ``DpopNonceHeader`` (only while server nonces are on)
and ``Cors``, and one set of exception handlers that turn the error hierarchy into RFC 6749 /
RFC 6750 answers. No path redirects (a trailing slash is a 404).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authsvc import __version__, events
from authsvc.admin.app import create_admin_app
from authsvc.api.cors import Cors
from authsvc.api.discovery import DISCOVERY_PATHS
from authsvc.api.docs import docs_routes
from authsvc.api.dpop_nonce import DpopNonceHeader
from authsvc.api.endpoints import ENDPOINTS, PATHS
from authsvc.api.form import MAX_BODY
from authsvc.api.guard import Guard
from authsvc.api.health import METRICS
from authsvc.api.jwks import JWKS_PATH
from authsvc.api.prefix import IssuerPrefix
from authsvc.api.responses import error_response, json_response
from authsvc.api.routes import openapi_document, starlette_routes
from authsvc.api.schemas import SECURITY_SCHEMES
from authsvc.api.users import USER_SCHEMA
from authsvc.clock import Clock
from authsvc.console.routes import console_routes
from authsvc.errors import (
    ClientAuthRateLimited,
    KeyStoreError,
    LoginRateLimited,
    OAuthError,
    StorageUnavailable,
    TemporarilyUnavailable,
)
from authsvc.listeners import Listeners
from authsvc.logs import configure_logging, quiet_leaky_loggers
from authsvc.metrics import Metrics, MetricsMiddleware
from authsvc.runtime import Services
from authsvc.settings import AuthSettings, get_settings

__all__ = ["AuthsvcApp", "create_app", "create_served_app", "served_app"]

log = logging.getLogger("authsvc")


class AuthsvcApp(Starlette):
    """The service's ASGI app, with its OpenAPI document (served at ``/openapi.json``)."""

    metrics: Metrics
    admin: Starlette  # the admin listener's app (AUTHSVC_ADMIN_BIND), on this app's services
    #: The issuer's path when it has one (every endpoint is served under it), else None.
    prefix: IssuerPrefix | None = None
    _openapi: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.prefix is not None and scope["type"] == "http":
            scope = self.prefix.scope(scope)
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack without its outermost ``ServerErrorMiddleware``: ``Guard``, just inside
        it, already answers whatever escapes with a bare 500, so Starlette's layer only wrapped
        every ``send`` once more."""
        stack = super().build_middleware_stack()
        if not (isinstance(stack, ServerErrorMiddleware) and isinstance(stack.app, Guard)):
            raise RuntimeError("Starlette's middleware stack is not ServerErrorMiddleware around Guard")
        return stack.app

    def openapi(self) -> dict[str, Any]:
        """The document of the routing table (built once: the table never changes)."""
        if self._openapi is None:
            self._openapi = openapi_document(
                ENDPOINTS,
                title="authsvc",
                version=__version__,
                components={"schemas": {"UserOut": USER_SCHEMA}, "securitySchemes": SECURITY_SCHEMES},
            )
            if self.prefix is not None:  # "Try it out" in /docs, and any client, under the prefix
                self._openapi["servers"] = [{"url": self.prefix.path}]
        return self._openapi


def create_app(
    settings: AuthSettings | None = None, clock: Clock | None = None, *, served: bool = False
) -> AuthsvcApp:
    """The ASGI app. Stores, keys and the engine are built in the lifespan, not at import.

    ``served``: the app of ``authsvc serve`` (a whole process), which has given an
    empty key store its first key and checked the passphrase before it starts the
    app; otherwise (tests, embedding) the lifespan bootstraps the key store itself.
    """
    settings = settings or get_settings()
    quiet_leaky_loggers()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings, clock, bootstrap_keys=not served)
        services.sweep_in_background()
        app.state.services = services
        metrics.watch_keys(services.keys)
        services.events.subscribe(metrics.observe)
        # With an admin listener, /metrics is served there only (CONTRACT.md: Operator surface).
        public = tuple(e for e in ENDPOINTS if not (settings.admin_bind and e.path == METRICS.path))
        app.router.routes.extend(starlette_routes(public, services, metrics))
        if served:
            # Everything built so far (modules, tables, the key set) lives as long as the
            # process: out of the collector's sight, a full collection pauses requests for
            # what they allocate, not for the whole program (client_credentials' p99 under
            # the bench: 30-60 ms from 40-50 ms full collections, back to ~10 ms).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await services.close()

    async def openapi_json(_request: Request) -> Response:
        return json_response(app.openapi())

    own_routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
    if settings.docs:
        own_routes.extend(docs_routes("authsvc"))
    app = AuthsvcApp(
        routes=own_routes,
        middleware=[
            Middleware(Guard, max_body=MAX_BODY),
            Middleware(MetricsMiddleware, metrics=metrics, routes=PATHS, self_counted=frozenset({JWKS_PATH})),
            *([Middleware(DpopNonceHeader)] if settings.dpop_nonce else []),
            Middleware(
                Cors,
                public=frozenset({JWKS_PATH, *DISCOVERY_PATHS}),
                registered=frozenset({"/token", "/revoke", "/userinfo"}),
                origins=_registered_origins,
            ),
        ],
        exception_handlers=_error_handlers(metrics),
        lifespan=lifespan,
    )
    if settings.issuer_path:
        app.prefix = IssuerPrefix(settings.resolved_issuer)
    app.router.redirect_slashes = False  # a near-miss path is a 404, never a redirect to the Host header
    app.metrics = metrics
    app.state.metrics = metrics
    app.admin = create_admin_app(app, metrics, extra_routes=console_routes(app))
    return app


async def _registered_origins(scope: Scope) -> frozenset[str]:
    services: Services = scope["app"].state.services
    return await services.clients.web_origins()


def create_served_app() -> ASGIApp:
    """The factory ``serve --workers N`` gives uvicorn: each worker sets up its logging and loads
    the keys ``serve`` has bootstrapped and checked."""
    configure_logging()
    return served_app(get_settings())


def served_app(settings: AuthSettings) -> ASGIApp:
    """The app ``serve`` runs: the public app, and the admin app on its own port when set."""
    app = create_app(settings, served=True)
    admin = settings.admin_address
    return app if admin is None else Listeners(app, app.admin, admin[1])


def _error_handlers(metrics: Metrics) -> dict[Any, Any]:
    async def oauth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OAuthError)
        metrics.token_errors.labels(exc.error).inc()
        if isinstance(exc, LoginRateLimited):
            request.app.state.services.events.publish(events.LoginRateLimited())
        elif isinstance(exc, ClientAuthRateLimited):
            request.app.state.services.events.publish(events.ClientAuthRateLimited())
        if exc.detail:
            log.debug("%s: %s", exc.error, exc.detail)
        return error_response(exc)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return json_response(
            {"error": code, "error_description": "No such resource or method."},
            exc.status_code,
            dict(exc.headers or {}),
        )

    async def unavailable(_request: Request, exc: Exception) -> Response:
        # The class only: a database error's text can carry SQL parameters.
        log.error("service unavailable: %s", type(exc).__name__)
        metrics.token_errors.labels(TemporarilyUnavailable.error).inc()
        return error_response(TemporarilyUnavailable())

    handlers: dict[Any, Any] = {OAuthError: oauth_error, HTTPException: http_error}
    # The database (its driver's errors, a pool timeout) or the key store cannot serve now.
    for kind in (KeyStoreError, StorageUnavailable, DBAPIError, SQLAlchemyTimeout, TimeoutError, OSError):
        handlers[kind] = unavailable
    return handlers
