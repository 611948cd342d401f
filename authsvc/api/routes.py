"""The one routing table: every HTTP endpoint, its handler and its OpenAPI operation.

Each ``api`` module declares its ``Endpoint``s: path, methods, the OpenAPI
operation(s), and ``build``, which makes the handler from the parts of the
process it needs (never the whole ``Services``). ``create_app`` turns the
table into plain Starlette routes once the process's services exist; the
OpenAPI document, the metrics' route labels and the tests' route lists are
read from the same table. There is no second dispatcher: the hot endpoints are
Starlette routes like the others (the JWKS one a bare ASGI handler).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from authsvc.metrics import Metrics
from authsvc.runtime import Services

__all__ = ["Endpoint", "Handler", "openapi_document", "starlette_routes"]

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    #: method -> its OpenAPI operation object (summary, parameters, requestBody, responses).
    operations: Mapping[str, dict[str, Any]]
    #: The handler, from what the process built: a request handler, or a bare ASGI app.
    build: Callable[[Services, Metrics], Handler | ASGIApp]
    asgi: bool = False  # ``build`` returns an ASGI app (no Request object is made for it)
    methods: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(method.upper() for method in self.operations))


def starlette_routes(endpoints: tuple[Endpoint, ...], services: Services, metrics: Metrics) -> list[Route]:
    routes = []
    for endpoint in endpoints:
        handler = endpoint.build(services, metrics)
        if not endpoint.asgi:
            handler = _as_function(handler)  # type: ignore[arg-type]
        routes.append(Route(endpoint.path, handler, methods=list(endpoint.methods)))
    return routes


def _as_function(handler: Handler) -> Handler:
    """Starlette takes a callable object for an ASGI app; a function makes it a request handler."""

    async def handle(request: Request) -> Response:
        return await handler(request)

    return handle


def openapi_document(
    endpoints: tuple[Endpoint, ...], *, title: str, version: str, components: dict[str, Any]
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the table."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        for method, operation in endpoint.operations.items():
            operation_id = (method + endpoint.path).replace("/", "_").replace(".", "_").replace("-", "_")
            paths.setdefault(endpoint.path, {})[method.lower()] = {
                "operationId": operation_id,
                **operation,
                "responses": {str(code): response for code, response in operation["responses"].items()},
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": components,
    }
