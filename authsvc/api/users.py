"""GET /users/me: the signed-in user, as the classic tutorial returns it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from authsvc.api.bearer import AccessClaims
from authsvc.api.deps import ServicesDep
from authsvc.api.schemas import BEARER_ERRORS, USER_AUTH
from authsvc.errors import InvalidTokenError

__all__ = ["UserOut", "router"]

router = APIRouter()


class UserOut(BaseModel):
    username: str
    email: str | None = None
    full_name: str | None = None
    disabled: bool = False


@router.get(
    "/users/me",
    response_model=UserOut,
    summary="The user the access token acts for",
    responses=BEARER_ERRORS,
    openapi_extra=USER_AUTH,
)
async def me(claims: AccessClaims, services: ServicesDep) -> UserOut:
    if not isinstance(claims.get("sid"), str):
        raise InvalidTokenError("This route needs a user's access token.", detail="no sid")
    user = services.recent_users.get(claims["sub"])
    if user is None:
        user = await services.users.by_id(claims["sub"])
        if user is not None:
            services.recent_users.put(user.id, user)
    if user is None or user.disabled:
        raise InvalidTokenError(detail="user gone or disabled")
    return UserOut(username=user.username, email=user.email, full_name=user.full_name, disabled=user.disabled)
