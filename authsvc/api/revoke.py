"""POST /revoke (RFC 7009): a refresh token ends its session; an access token is remembered."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.responses import NO_STORE
from authsvc.api.schemas import CLIENT_ERRORS, revocation_response_schema
from authsvc.api.token_request import TOKEN_FORM, read_token_request
from authsvc.errors import InvalidGrant
from authsvc.events import TokenRevoked

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/revoke",
    summary="Token revocation (RFC 7009)",
    openapi_extra=TOKEN_FORM,
    response_class=Response,
    responses={200: revocation_response_schema(), **CLIENT_ERRORS},
)
async def revoke(request: Request, services: ServicesDep) -> Response:
    parsed = await read_token_request(request, services, allow_default=True, confidential=False)
    identity, presented, now = parsed.identity, parsed.presented, parsed.now
    if presented is None:
        return Response(status_code=200, headers=NO_STORE)
    claims = presented.claims
    if claims.get("client_id") != identity.client.id:
        raise InvalidGrant("The token was issued to another client.", detail="revoke: other client")
    sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    if presented.kind == "refresh_token":
        if sid is not None:
            await services.session_store.revoke(sid, now, "revoked")
    else:
        # Remembered as long as any check here could still accept it: exp plus the leeway.
        remember_until = float(claims["exp"]) + services.settings.clock_skew
        await services.session_store.revoke_access_token(claims["jti"], remember_until)
    services.events.publish(
        TokenRevoked(
            token_use=presented.kind,
            client_id=identity.client.id,
            user_id=claims.get("sub") if sid is not None else None,  # client tokens have no user
            sid=sid,
        )
    )
    return Response(status_code=200, headers=NO_STORE)
