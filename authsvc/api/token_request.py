"""The shared first half of /revoke and /introspect: a client presents a token.

Both read the form, authenticate the client, require ``token`` and recognise
it (the ``token_type_hint`` only orders the attempts); this module does that
once, and describes that form body once for the OpenAPI document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from authsvc.api.form import read_form
from authsvc.api.peer import request_address
from authsvc.api.schemas import CLIENT_AUTH, form_body
from authsvc.client_auth import ClientIdentity
from authsvc.errors import InvalidClient, InvalidRequest
from authsvc.runtime import Services
from authsvc.tokens.inspection import PresentedToken, identify

__all__ = ["TOKEN_FORM", "TokenRequest", "read_token_request"]

TOKEN_FORM: dict[str, Any] = form_body(
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
)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    identity: ClientIdentity
    presented: PresentedToken | None  # None: not a valid token of ours
    now: float


async def read_token_request(
    request: Request, services: Services, *, allow_default: bool, confidential: bool
) -> TokenRequest:
    form = await read_form(request)
    identity = await services.client_auth.authenticate(
        request.headers.get("authorization"),
        form,
        allow_default=allow_default,
        address=request_address(request, services),
    )
    if confidential and identity.client.public:
        raise InvalidClient(detail="this endpoint needs a confidential client")
    token = form.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    now = services.clock.now()
    presented = identify(
        token,
        form.get("token_type_hint"),
        services.keys,
        services.tokens.issuer,
        now,
        services.settings.clock_skew,
    )
    return TokenRequest(identity, presented, now)
