"""GET /users/me: the signed-in user, as the classic tutorial returns it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.bearer import access_claims
from authsvc.api.deps import ServicesDep
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.schemas import BEARER_ERRORS, USER_AUTH
from authsvc.errors import InvalidTokenError
from authsvc.runtime import Services

__all__ = ["UserOut", "router"]

router = APIRouter()


class UserOut(BaseModel):
    username: str
    email: str | None = None
    full_name: str | None = None
    disabled: bool = False


async def current_user(request: Request, services: Services) -> Response:
    """The signed-in user of a request (also called straight from the fast path)."""
    claims = await access_claims(request, services)
    if not isinstance(claims.get("sid"), str):
        raise InvalidTokenError("This route needs a user's access token.", detail="no sid")
    sub = claims["sub"]
    user = await services.recent_users.get_or_load(sub, lambda: services.users.by_id(sub))
    if user is None or user.disabled:
        raise InvalidTokenError(detail="user gone or disabled")
    out = UserOut(username=user.username, email=user.email, full_name=user.full_name, disabled=user.disabled)
    return json_response(out.model_dump(), headers=NO_STORE)  # personal data: never cached


@router.get(
    "/users/me",
    response_model=UserOut,
    summary="The user the access token acts for",
    responses=BEARER_ERRORS,
    openapi_extra=USER_AUTH,
)
async def me(request: Request, services: ServicesDep) -> Response:
    return await current_user(request, services)
