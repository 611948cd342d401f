"""POST /token: parse the form, authenticate the client, hand the request to its grant."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.form import read_form
from authsvc.api.peer import request_address
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.schemas import CLIENT_AUTH, TOKEN_ERRORS, form_body, token_response_schema
from authsvc.errors import InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from authsvc.grants import GRANT_TYPES, GrantRequest, token_parameters

__all__ = ["router"]

router = APIRouter()

_CLIENT_PARAMETERS = {
    "client_id": {"type": "string"},
    "client_secret": {"type": "string"},
    "client_assertion": {"type": "string"},
    "client_assertion_type": {"type": "string"},
}


@router.post(
    "/token",
    summary="OAuth 2.0 token endpoint (RFC 6749)",
    openapi_extra=form_body(
        {
            "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
            **token_parameters(),
            **_CLIENT_PARAMETERS,
        },
        required=["grant_type"],
        **CLIENT_AUTH,
    ),
    responses={200: token_response_schema(), **TOKEN_ERRORS},
)
async def token(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required.")
    grant = services.grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType()
    address = request_address(request, services)
    identity = await services.client_auth.authenticate(
        request.headers.get("authorization"), form, allow_default=grant.default_client, address=address
    )
    if grant_type not in identity.client.grant_types:
        raise UnauthorizedClient()
    result = await grant.handle(GrantRequest(form, identity.client, address))
    request.app.state.metrics.tokens_issued.labels(grant_type).inc()
    return json_response(result.body, headers=NO_STORE)
