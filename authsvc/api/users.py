"""GET /users/me: the signed-in user, as the classic tutorial returns it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from authsvc.api.bearer import AccessClaims
from authsvc.api.deps import ServicesDep
from authsvc.api.schemas import error_schema
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
    responses={401: error_schema("invalid_token"), 403: error_schema("insufficient_scope")},
)
async def me(claims: AccessClaims, services: ServicesDep) -> UserOut:
    if not isinstance(claims.get("sid"), str):
        raise InvalidTokenError("This route needs a user's access token.", detail="no sid")
    user = await services.users.by_id(claims["sub"])
    if user is None or user.disabled:
        raise InvalidTokenError(detail="user gone or disabled")
    return UserOut(username=user.username, email=user.email, full_name=user.full_name, disabled=user.disabled)
