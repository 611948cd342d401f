"""create_app(settings): the FastAPI application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from authsvc import __version__, events
from authsvc.api import discovery, health, introspect, jwks, revoke, token, users
from authsvc.api.fastpath import DirectEndpoints
from authsvc.api.form import MAX_BODY
from authsvc.api.guard import Guard
from authsvc.api.jwks import JwksFastPath
from authsvc.api.responses import error_response, json_response
from authsvc.api.schemas import SECURITY_SCHEMES
from authsvc.clock import Clock
from authsvc.errors import (
    ClientAuthRateLimited,
    InvalidRequest,
    KeyStoreError,
    LoginRateLimited,
    OAuthError,
    StorageUnavailable,
    TemporarilyUnavailable,
)
from authsvc.logs import configure_logging, quiet_leaky_loggers
from authsvc.metrics import Metrics, MetricsMiddleware
from authsvc.runtime import Services
from authsvc.settings import AuthSettings, get_settings

__all__ = ["create_app", "create_served_app"]

log = logging.getLogger("authsvc")


def create_app(settings: AuthSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The ASGI app. Stores, keys and the engine are built in the lifespan, not at import."""
    settings = settings or get_settings()
    quiet_leaky_loggers()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, clock, bootstrap_keys=True)
        services.sweep_in_background()
        app.state.services = services
        metrics.watch_keys(services.keys)
        services.events.subscribe(metrics.observe)
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="authsvc",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Never answer a near-miss path with a redirect built from the Host header
        # (clients re-send the password there): a trailing slash is a 404.
        redirect_slashes=False,
    )
    for module in (token, revoke, introspect, jwks, discovery, users, health):
        app.include_router(module.router)
    _describe_security(app)
    app.state.metrics = metrics
    _install_error_handlers(app, metrics)
    app.add_middleware(
        DirectEndpoints,
        handlers={
            ("POST", "/token"): token.token,
            ("POST", "/revoke"): revoke.revoke,
            ("POST", "/introspect"): introspect.introspect,
            ("GET", "/users/me"): users.current_user,
        },
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(Guard, max_body=MAX_BODY)
    app.add_middleware(JwksFastPath)  # outermost: the JWKS skips the whole stack
    return app


def create_served_app() -> FastAPI:
    """The factory ``serve --workers N`` gives uvicorn: each worker sets up its logging."""
    configure_logging()
    return create_app()


def _describe_security(app: FastAPI) -> None:
    """Add the client and bearer authentication schemes the routes name to the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(OAuthError)
    async def oauth_error(request: Request, exc: OAuthError) -> Response:
        metrics.token_errors.labels(exc.error).inc()
        if isinstance(exc, LoginRateLimited | ClientAuthRateLimited):
            limited = events.LoginRateLimited() if isinstance(exc, LoginRateLimited) else (
                events.ClientAuthRateLimited()
            )
            request.app.state.services.events.publish(limited)
        if exc.detail:
            log.debug("%s: %s", exc.error, exc.detail)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, _exc: RequestValidationError) -> Response:
        metrics.token_errors.labels(InvalidRequest.error).inc()
        return error_response(InvalidRequest())

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
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

    # The database (its driver's errors, a pool timeout) or the key store cannot serve now.
    for kind in (KeyStoreError, StorageUnavailable, DBAPIError, SQLAlchemyTimeout, TimeoutError, OSError):
        app.add_exception_handler(kind, unavailable)
