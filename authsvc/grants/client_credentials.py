"""The client credentials grant (RFC 6749 §4.4): an access token for the client itself."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from authsvc.clock import Clock
from authsvc.errors import InvalidScope, UnauthorizedClient
from authsvc.grants.base import GrantRequest, requested_scope
from authsvc.tokens.families import TokenResponse
from authsvc.tokens.issuer import TokenIssuer, token_body

__all__ = ["ClientCredentialsGrant"]

audit = logging.getLogger("authsvc.audit")


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {"scope": {"type": "string"}}
    default_client: ClassVar[bool] = False  # a confidential client must authenticate

    def __init__(self, issuer: TokenIssuer, clock: Clock) -> None:
        self.issuer = issuer
        self.clock = clock

    async def handle(self, request: GrantRequest) -> TokenResponse:
        client = request.client
        if client.public:
            raise UnauthorizedClient(detail="public client")
        allowed = client.scopes or frozenset()
        requested = requested_scope(request.form)
        scopes = allowed if requested is None else requested
        if not scopes <= allowed:
            raise InvalidScope()
        token, expires_in = self.issuer.access_token(
            key=self.issuer.signing_key(), sub=client.id, client=client, scopes=scopes, now=self.clock.now()
        )
        # Not an audit event (a service's routine, every few minutes per caller): DEBUG only.
        audit.debug("client token", extra={"event": "token.client_credentials", "client_id": client.id})
        return TokenResponse(token_body(token, expires_in, scopes, None).encode())
