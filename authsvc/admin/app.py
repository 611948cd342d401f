"""The admin listener's app: the admin API's routes, its OpenAPI document, ``/metrics``.

Built beside the public app (``create_app``) and served on ``AUTHSVC_ADMIN_BIND``
by the same processes; its handlers use the services the public app's lifespan
built. Every error is an RFC 7807 problem document; unknown paths too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authsvc import __version__
from authsvc.admin import clients_api, keys_api, users_api
from authsvc.admin.context import AdminContext
from authsvc.admin.problems import PROBLEM_TYPE, Problem, problem_response
from authsvc.api.health import MetricsPage
from authsvc.metrics import Metrics

__all__ = ["ADMIN_ROUTES", "admin_openapi", "create_admin_app"]

Handler = Callable[[AdminContext, Request], Awaitable[Response]]

_PROBLEM = {"content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
_JSON = {"application/json": {"schema": {"type": "object"}}}
_STR_LIST = {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
_CLIENT_FIELDS: dict[str, Any] = {
    "jwks_uri": {"type": "string"},
    "grant_types": _STR_LIST,
    "scopes": _STR_LIST,
    "audiences": _STR_LIST,
    "access_token_ttl": {"type": "integer"},
    "redirect_uris": _STR_LIST,
    "post_logout_redirect_uris": _STR_LIST,
    "web_origins": _STR_LIST,
    "first_party": {"type": "boolean"},
    "require_par": {"type": "boolean"},
    "require_dpop": {"type": "boolean"},
}
_USER_FIELDS: dict[str, Any] = {
    "password": {"type": "string"},
    "scope": {"type": "string"},
    "email": {"type": "string"},
    "full_name": {"type": "string"},
}


def _body(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": bool(required), "content": {"application/json": {"schema": schema}}}}


def _op(summary: str, ok: int = 200, body: dict[str, Any] | None = None, path: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok): {"description": "Done", **({"content": _JSON} if ok != 204 else {})}
    }
    for status, what in ((400, "Invalid input"), (401, "No valid token"), (403, "No authsvc:admin scope")):
        responses[str(status)] = {"description": what, **_PROBLEM}
    if "{" in path:
        responses["404"] = {"description": "Not found", **_PROBLEM}
    if body is not None:
        responses["409"] = {"description": "Conflict", **_PROBLEM}
        responses["413"] = {"description": "Body too large", **_PROBLEM}
        responses["415"] = {"description": "Not JSON", **_PROBLEM}
    operation: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}], "responses": responses}
    parameters = [
        {"name": part.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for part in path.split("/")
        if part.startswith("{")
    ]
    if parameters:
        operation["parameters"] = parameters
    return {**operation, **(body or {})}


#: path -> method -> (handler, OpenAPI operation).
ADMIN_ROUTES: dict[str, dict[str, tuple[Handler, dict[str, Any]]]] = {
    "/admin/keys": {"GET": (keys_api.list_keys, _op("The keys and their timetable"))},
    "/admin/keys/rotate": {
        "POST": (keys_api.rotate_keys, _op("Rotate now", body=_body({"force": {"type": "boolean"}})))
    },
    "/admin/keys/{kid}/revoke": {
        "POST": (keys_api.revoke, _op("Revoke a key at once", path="/admin/keys/{kid}/revoke"))
    },
    "/admin/clients": {
        "GET": (clients_api.list_clients, _op("Every client")),
        "POST": (
            clients_api.add_client,
            _op(
                "Register a client (a generated secret is in the answer, once)",
                201,
                _body(
                    {"client_id": {"type": "string"}, "public": {"type": "boolean"}, **_CLIENT_FIELDS},
                    ("client_id",),
                ),
            ),
        ),
    },
    "/admin/clients/{client_id}": {
        "GET": (clients_api.get_client, _op("One client", path="/admin/clients/{client_id}")),
        "PATCH": (
            clients_api.update_client,
            _op("Change the members sent", body=_body(_CLIENT_FIELDS), path="/admin/clients/{client_id}"),
        ),
        "DELETE": (
            clients_api.remove_client,
            _op("Remove (its sessions end; the id is never reused)", 204, path="/admin/clients/{client_id}"),
        ),
    },
    "/admin/clients/{client_id}/secret": {
        "POST": (
            clients_api.rotate_secret,
            _op(
                "A new secret; the old one works for the overlap",
                body=_body({"overlap": {"type": "integer"}}),
                path="/admin/clients/{client_id}/secret",
            ),
        )
    },
    "/admin/users": {
        "GET": (users_api.list_users, _op("Every user")),
        "POST": (
            users_api.add_user,
            _op(
                "Add a user",
                201,
                _body({"username": {"type": "string"}, **_USER_FIELDS}, ("username", "password")),
            ),
        ),
    },
    "/admin/users/{name}": {
        "GET": (users_api.get_user, _op("One user", path="/admin/users/{name}")),
        "PATCH": (
            users_api.update_user,
            _op(
                "Disable, enable, set a password, change scopes or profile",
                body=_body({"disabled": {"type": "boolean"}, **_USER_FIELDS}),
                path="/admin/users/{name}",
            ),
        ),
        "DELETE": (users_api.delete_user, _op("Delete the user", 204, path="/admin/users/{name}")),
    },
    "/admin/users/{name}/sessions": {
        "GET": (users_api.sessions, _op("The user's live sessions", path="/admin/users/{name}/sessions")),
        "DELETE": (users_api.logout_user, _op("End every session", path="/admin/users/{name}/sessions")),
    },
}


def client_id_path(path: str) -> str:
    """A route template whose ``{client_id}`` takes the rest of the path: a client id may hold "/"
    (CONTRACT: printable, no spaces), sent as %2F and decoded before routing."""
    return path.replace("{client_id}", "{client_id:path}")


def _deepest_first(item: tuple[str, Any]) -> int:
    """Longer templates first: ``/clients/{client_id}/secret`` is tried before ``/clients/{client_id}``
    (which would take "x/secret" as an id); a method the longer one lacks falls through to it."""
    return -item[0].count("/")


def admin_openapi() -> dict[str, Any]:
    paths = {
        path: {
            method.lower(): {"operationId": f"{method.lower()}{path}".replace("/", "_"), **op}
            for method, (_h, op) in ops.items()
        }
        for path, ops in ADMIN_ROUTES.items()
    }
    problem = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "authsvc admin API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Problem": problem},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def create_admin_app(
    public_app: Any, metrics: Metrics, *, extra_routes: list[Route] | None = None
) -> Starlette:
    """The admin app in front of ``public_app``'s services."""
    context = AdminContext(public_app)

    def route(path: str, method: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            return await handler(context, request)

        return Route(path, endpoint, methods=[method])

    document = json.dumps(admin_openapi()).encode()

    async def openapi(_request: Request) -> Response:
        return Response(document, media_type="application/json")

    page = MetricsPage(metrics)

    async def metrics_page(request: Request) -> Response:
        return await page(request)

    routes = [
        route(client_id_path(path), method, handler)
        for path, ops in sorted(ADMIN_ROUTES.items(), key=_deepest_first)
        for method, (handler, _op) in ops.items()
    ]
    routes += [
        Route("/admin/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        *(extra_routes or []),
    ]

    async def on_problem(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = {404: "No such resource.", 405: "Method not allowed."}.get(exc.status_code, "Bad request.")
        return problem_response(Problem(exc.status_code, detail, headers=dict(exc.headers or {})))

    app = Starlette(routes=routes, exception_handlers={Problem: on_problem, HTTPException: on_http})
    app.router.redirect_slashes = False
    app.state.context = context
    return app
