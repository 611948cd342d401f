"""POST /token: parse the form, find the client, dispatch on grant_type."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.form import read_form
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.schemas import TOKEN_ERRORS, form_body, token_response_schema
from authsvc.errors import InvalidClient, InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from authsvc.grants import password, refresh_token
from authsvc.runtime import Services
from authsvc.store.records import Client

__all__ = ["router"]

router = APIRouter()

_GRANTS = ("password", "refresh_token")


async def _client(form: dict[str, str], services: Services) -> Client:
    """The calling client. Without any client identification: the default client."""
    client_id = form.get("client_id", services.clients.default.id)
    client = await services.clients.get(client_id)
    if client is None:
        raise InvalidClient(detail="unknown client")
    return client


@router.post(
    "/token",
    summary="OAuth 2.0 token endpoint (RFC 6749)",
    openapi_extra=form_body(
        {
            "grant_type": {"type": "string", "enum": list(_GRANTS)},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
        },
        required=["grant_type"],
    ),
    responses={200: token_response_schema(), **TOKEN_ERRORS},
)
async def token(request: Request, services: ServicesDep) -> Response:
    form = await read_form(request)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required.")
    if grant_type not in _GRANTS:
        raise UnsupportedGrantType()
    client = await _client(form, services)
    if grant_type not in client.grant_types:
        raise UnauthorizedClient()
    if grant_type == "password":
        result = await password.handle(
            form, client, users=services.users, hasher=services.hasher, sessions=services.sessions
        )
    else:
        result = await refresh_token.handle(form, client, sessions=services.sessions)
    return json_response(result.body, headers=NO_STORE)
