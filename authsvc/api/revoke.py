"""POST /revoke (RFC 7009): a refresh token ends its session; an access token is remembered."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.responses import NO_STORE
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import CLIENT_ERRORS, revocation_response_schema
from authsvc.api.token_request import TOKEN_FORM, TokenReader
from authsvc.errors import InvalidGrant
from authsvc.events import Events, TokenRevoked
from authsvc.store.protocols import SessionStore

__all__ = ["ENDPOINT", "RevokeEndpoint"]


class RevokeEndpoint:
    def __init__(self, reader: TokenReader, sessions: SessionStore, events: Events, skew: int) -> None:
        self.reader = reader
        self.sessions = sessions
        self.events = events
        self.skew = skew

    async def __call__(self, request: Request) -> Response:
        parsed = await self.reader.read(request, allow_default=True, confidential=False)
        identity, presented, now = parsed.identity, parsed.presented, parsed.now
        if presented is None:
            return Response(status_code=200, headers=NO_STORE)
        claims = presented.claims
        if claims.get("client_id") != identity.client.id:
            raise InvalidGrant("The token was issued to another client.", detail="revoke: other client")
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if presented.kind == "refresh_token":
            if sid is not None:
                await self.sessions.revoke(sid, now, "revoked")
        else:
            # Remembered as long as any check here could still accept it: exp plus the leeway.
            await self.sessions.revoke_access_token(claims["jti"], float(claims["exp"]) + self.skew)
        self.events.publish(
            TokenRevoked(
                token_use=presented.kind,
                client_id=identity.client.id,
                user_id=claims.get("sub") if sid is not None else None,  # client tokens have no user
                sid=sid,
            )
        )
        return Response(status_code=200, headers=NO_STORE)


ENDPOINT = Endpoint(
    "/revoke",
    {
        "post": {
            "summary": "Token revocation (RFC 7009)",
            **TOKEN_FORM,
            "responses": {200: revocation_response_schema(), **CLIENT_ERRORS},
        }
    },
    build=lambda services, _metrics: RevokeEndpoint(
        services.token_reader, services.session_store, services.events, services.settings.clock_skew
    ),
)
