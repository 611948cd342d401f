"""GET /users/me: the signed-in user, as the classic tutorial returns it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.bearer import BearerCheck
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import BEARER_ERRORS, USER_AUTH
from authsvc.errors import InvalidTokenError
from authsvc.store.protocols import UserStore
from authsvc.store.records import User
from authsvc.ttl_cache import TtlCache

__all__ = ["ENDPOINT", "USER_SCHEMA", "MeEndpoint"]

#: The answer's shape (the OpenAPI document's ``UserOut``).
USER_SCHEMA: dict[str, Any] = {
    "title": "UserOut",
    "type": "object",
    "properties": {
        "username": {"title": "Username", "type": "string"},
        "email": {"title": "Email", "anyOf": [{"type": "string"}, {"type": "null"}]},
        "full_name": {"title": "Full Name", "anyOf": [{"type": "string"}, {"type": "null"}]},
        "disabled": {"title": "Disabled", "type": "boolean", "default": False},
    },
    "required": ["username"],
}


class MeEndpoint:
    def __init__(self, bearer: BearerCheck, users: UserStore, recent: TtlCache[str, User]) -> None:
        self.bearer = bearer
        self.users = users
        self.recent = recent  # users by id, kept half a second; local changes clear it

    async def __call__(self, request: Request) -> Response:
        claims = await self.bearer.claims(request)
        if not isinstance(claims.get("sid"), str):
            raise InvalidTokenError("This route needs a user's access token.", detail="no sid")
        sub = claims["sub"]
        user = await self.recent.get_or_load(sub, lambda: self.users.by_id(sub))
        if user is None or user.disabled:
            raise InvalidTokenError(detail="user gone or disabled")
        body = {
            "username": user.username,
            "email": user.email,
            "full_name": user.full_name,
            "disabled": user.disabled,
        }
        return json_response(body, headers=NO_STORE)  # personal data: never cached


ENDPOINT = Endpoint(
    "/users/me",
    {
        "get": {
            "summary": "The user the access token acts for",
            **USER_AUTH,
            "responses": {
                200: {
                    "description": "The user",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserOut"}}},
                },
                **BEARER_ERRORS,
            },
        }
    },
    build=lambda services, _metrics: MeEndpoint(services.bearer, services.users, services.recent_users),
)
