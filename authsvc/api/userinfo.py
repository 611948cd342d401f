"""GET|POST /userinfo (OpenID Connect Core §5.3): claims about the signed-in user, by scope.

A bearer access token with ``openid``, from the Authorization header only (a
POST body token is not read: no credential ever comes from a form here).
``profile`` adds ``preferred_username`` and ``name``; ``email`` adds
``email`` and ``email_verified`` (false: authsvc does not verify addresses).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.bearer import BearerCheck
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import BEARER_ERRORS, USER_AUTH
from authsvc.errors import InsufficientScope, InvalidTokenError
from authsvc.store.protocols import UserStore
from authsvc.store.records import User
from authsvc.ttl_cache import TtlCache

__all__ = ["ENDPOINT", "UserinfoEndpoint"]


class UserinfoEndpoint:
    def __init__(self, bearer: BearerCheck, users: UserStore, recent: TtlCache[str, User]) -> None:
        self.bearer = bearer
        self.users = users
        self.recent = recent

    async def __call__(self, request: Request) -> Response:
        claims = await self.bearer.claims(request, any_audience=True)
        if not isinstance(claims.get("sid"), str):
            raise InvalidTokenError("This route needs a user's access token.", detail="no sid")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if "openid" not in scopes:
            raise InsufficientScope("openid")
        sub = claims["sub"]
        user = await self.recent.get_or_load(sub, lambda: self.users.by_id(sub))
        if user is None or user.disabled:
            raise InvalidTokenError(detail="user gone or disabled")
        body: dict[str, object] = {"sub": user.id}
        if "profile" in scopes:
            body["preferred_username"] = user.username
            body["name"] = user.full_name or user.username
        if "email" in scopes and user.email:
            body["email"] = user.email
            body["email_verified"] = False
        return json_response(body, headers=NO_STORE)


_OPERATION = {
    **USER_AUTH,
    "responses": {
        200: {
            "description": "Claims about the user",
            "content": {"application/json": {"schema": {"type": "object", "required": ["sub"]}}},
        },
        **BEARER_ERRORS,
    },
}

ENDPOINT = Endpoint(
    "/userinfo",
    {
        "get": {"summary": "OpenID Connect UserInfo", **_OPERATION},
        "post": {"summary": "OpenID Connect UserInfo (POST)", **_OPERATION},
    },
    build=lambda services, _metrics: UserinfoEndpoint(services.bearer, services.users, services.recent_users),
)
