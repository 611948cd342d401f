"""POST /token: parse the form, find the client, dispatch on grant_type."""

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
from authsvc.grants import GRANT_TYPES, client_credentials, password, refresh_token

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/token",
    summary="OAuth 2.0 token endpoint (RFC 6749)",
    openapi_extra=form_body(
        {
            "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "client_assertion": {"type": "string"},
            "client_assertion_type": {"type": "string"},
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
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType()
    address = request_address(request, services)
    identity = await services.client_auth.authenticate(
        request.headers.get("authorization"),
        form,
        allow_default=grant_type != "client_credentials",
        address=address,
    )
    client = identity.client
    if grant_type not in client.grant_types:
        raise UnauthorizedClient()
    if grant_type == "password":
        result = await password.handle(
            form,
            client,
            users=services.users,
            hasher=services.hasher,
            sessions=services.sessions,
            limiter=services.login_limiter,
            address=address,
        )
    elif grant_type == "refresh_token":
        result = await refresh_token.handle(form, client, sessions=services.sessions)
    else:
        result = await client_credentials.handle(form, client, sessions=services.sessions)
    request.app.state.metrics.tokens_issued.labels(grant_type).inc()
    return json_response(result.body, headers=NO_STORE)
