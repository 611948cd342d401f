"""POST /introspect (RFC 7662), for authenticated confidential clients."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import CLIENT_ERRORS, introspection_response_schema
from authsvc.api.token_request import TOKEN_FORM, TokenReader
from authsvc.clients import ClientDirectory
from authsvc.store.protocols import SessionStore, UserStore
from authsvc.tokens.inspection import is_active

__all__ = ["ENDPOINT", "IntrospectEndpoint"]

_INACTIVE = b'{"active":false}'
_COPIED = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti", "sid", "cnf")


class IntrospectEndpoint:
    def __init__(
        self, reader: TokenReader, sessions: SessionStore, clients: ClientDirectory, users: UserStore
    ) -> None:
        self.reader = reader
        self.sessions = sessions
        self.clients = clients
        self.users = users

    async def __call__(self, request: Request) -> Response:
        parsed = await self.reader.read(request, allow_default=False, confidential=True)
        presented, now = parsed.presented, parsed.now
        if presented is None or not await is_active(presented, self.sessions, now):
            return json_response(_INACTIVE, headers=NO_STORE)
        claims = presented.claims
        if not await self.clients.is_live(claims["client_id"]):  # removed: every token of it ends
            return json_response(_INACTIVE, headers=NO_STORE)
        body: dict[str, object] = {"active": True, **{k: claims[k] for k in _COPIED if k in claims}}
        body["token_use"] = presented.kind
        if presented.kind == "access_token":
            # RFC 6750's type, or RFC 9449 §6.2's for a token bound to a DPoP key.
            body["token_type"] = "DPoP" if isinstance(claims.get("cnf"), dict) else "Bearer"
        if isinstance(claims.get("sid"), str):
            user = await self.users.by_id(claims["sub"])
            if user is None or user.disabled:
                return json_response(_INACTIVE, headers=NO_STORE)
            body["username"] = user.username
        return json_response(body, headers=NO_STORE)


ENDPOINT = Endpoint(
    "/introspect",
    {
        "post": {
            "summary": "Token introspection (RFC 7662)",
            **TOKEN_FORM,
            "responses": {200: introspection_response_schema(), **CLIENT_ERRORS},
        }
    },
    build=lambda services, _metrics: IntrospectEndpoint(
        services.token_reader, services.session_store, services.clients, services.users
    ),
)
