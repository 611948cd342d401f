"""The client credentials grant (RFC 6749 §4.4): an access token for the client itself."""

from __future__ import annotations

from typing import Any, ClassVar

from authsvc.clock import Clock
from authsvc.errors import UnauthorizedClient
from authsvc.events import ClientTokenIssued, Events
from authsvc.grants.base import GrantRequest, requested_scope
from authsvc.scopes import granted_scopes
from authsvc.tokens.families import TokenResponse
from authsvc.tokens.issuer import TokenIssuer, token_body

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {"scope": {"type": "string"}}
    default_client: ClassVar[bool] = False  # a confidential client must authenticate

    def __init__(self, issuer: TokenIssuer, clock: Clock, events: Events) -> None:
        self.issuer = issuer
        self.clock = clock
        self.events = events

    async def handle(self, request: GrantRequest) -> TokenResponse:
        client = request.client
        if client.public:
            raise UnauthorizedClient(detail="public client")
        scopes = granted_scopes(client.scopes or frozenset(), requested_scope(request.form))
        token, expires_in = self.issuer.access_token(
            key=self.issuer.signing_key(),
            sub=client.id,
            client=client,
            scopes=scopes,
            now=self.clock.now(),
            jkt=request.dpop_jkt,
        )
        self.events.publish(ClientTokenIssued(client_id=client.id))  # routine: DEBUG, not an audit line
        body = token_body(token, expires_in, scopes, None, dpop=request.dpop_jkt is not None)
        return TokenResponse(body.encode())
