"""POST /introspect (RFC 7662), for authenticated confidential clients."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.form import read_form
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.schemas import CLIENT_AUTH, CLIENT_ERRORS, form_body, introspection_response_schema
from authsvc.errors import InvalidClient, InvalidRequest
from authsvc.tokens.inspection import identify, is_active

__all__ = ["router"]

router = APIRouter()

_INACTIVE = b'{"active":false}'
_COPIED = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti", "sid")


@router.post(
    "/introspect",
    summary="Token introspection (RFC 7662)",
    openapi_extra=form_body(
        {
            "token": {"type": "string"},
            "token_type_hint": {"type": "string"},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "client_assertion": {"type": "string"},
            "client_assertion_type": {"type": "string"},
        },
        required=["token"],
        **CLIENT_AUTH,
    ),
    responses={200: introspection_response_schema(), **CLIENT_ERRORS},
)
async def introspect(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    identity = await services.client_auth.authenticate(
        request.headers.get("authorization"), form, allow_default=False
    )
    if identity.client.public:
        raise InvalidClient(detail="introspection needs a confidential client")
    token = form.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    now = services.clock.now()
    presented = identify(
        token,
        form.get("token_type_hint"),
        services.keys,
        services.sessions.issuer,
        now,
        services.settings.clock_skew,
    )
    if presented is None or not await is_active(presented, services.session_store, now):
        return json_response(_INACTIVE, headers=NO_STORE)
    claims = presented.claims
    body: dict[str, object] = {"active": True, **{k: claims[k] for k in _COPIED if k in claims}}
    body["token_use"] = presented.kind
    if presented.kind == "access_token":
        body["token_type"] = "Bearer"  # noqa: S105 - the RFC 6750 token type, not a secret
    if isinstance(claims.get("sid"), str):
        user = await services.users.by_id(claims["sub"])
        if user is None or user.disabled:
            return json_response(_INACTIVE, headers=NO_STORE)
        body["username"] = user.username
    return json_response(body, headers=NO_STORE)
