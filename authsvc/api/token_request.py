"""The shared first half of /revoke and /introspect: a client presents a token.

Both read the form, authenticate the client, require ``token`` and recognise
it (the ``token_type_hint`` only orders the attempts); ``TokenReader`` does
that once, and ``TOKEN_FORM`` describes that form body once for the OpenAPI
document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from authsvc.addresses import Network
from authsvc.api.form import read_form
from authsvc.api.peer import request_address
from authsvc.api.schemas import CLIENT_AUTH, CLIENT_PARAMETERS, form_body
from authsvc.client_auth import ClientAuthenticator, ClientIdentity
from authsvc.clock import Clock
from authsvc.errors import InvalidClient, InvalidRequest
from authsvc.keys.ring import KeyRing
from authsvc.tokens.inspection import PresentedToken, identify

__all__ = ["TOKEN_FORM", "TokenReader", "TokenRequest"]

TOKEN_FORM: dict[str, Any] = form_body(
    {"token": {"type": "string"}, "token_type_hint": {"type": "string"}, **CLIENT_PARAMETERS},
    required=["token"],
    **CLIENT_AUTH,
)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    identity: ClientIdentity
    presented: PresentedToken | None  # None: not a valid token of ours
    now: float


@dataclass(frozen=True, slots=True)
class TokenReader:
    client_auth: ClientAuthenticator
    keys: KeyRing
    issuer: str
    clock: Clock
    skew: int
    trusted_proxies: Sequence[Network]

    async def read(self, request: Request, *, allow_default: bool, confidential: bool) -> TokenRequest:
        form = await read_form(request)
        identity = await self.client_auth.authenticate(
            request.headers.get("authorization"),
            form,
            allow_default=allow_default,
            address=request_address(request, self.trusted_proxies),
        )
        if confidential and identity.client.public:
            raise InvalidClient(detail="this endpoint needs a confidential client")
        token = form.get("token")
        if token is None:
            raise InvalidRequest("The token parameter is required.")
        now = self.clock.now()
        presented = identify(token, form.get("token_type_hint"), self.keys, self.issuer, now, self.skew)
        return TokenRequest(identity, presented, now)
