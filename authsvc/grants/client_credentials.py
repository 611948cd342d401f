"""The client credentials grant (RFC 6749 §4.4): an access token for the client itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from authsvc.errors import InvalidScope, UnauthorizedClient
from authsvc.store.records import Client
from authsvc.tokens.sessions import SessionService, TokenResponse, parse_scope, scope_str

__all__ = ["handle"]

audit = logging.getLogger("authsvc.audit")


async def handle(form: Mapping[str, str], client: Client, *, sessions: SessionService) -> TokenResponse:
    if client.public:
        raise UnauthorizedClient(detail="public client")
    allowed = client.scopes or frozenset()
    requested = parse_scope(form.get("scope"))
    scopes = allowed if requested is None else requested
    if not scopes <= allowed:
        raise InvalidScope()
    now = sessions.clock.now()
    token, expires_in = sessions.access_token(sub=client.id, client=client, scopes=scopes, now=now, sid=None)
    # Not an audit event (a service's routine, every few minutes per caller): DEBUG only.
    audit.debug("client token", extra={"event": "token.client_credentials", "client_id": client.id})
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope_str(scopes),
    }
    return TokenResponse(json.dumps(body, separators=(",", ":")).encode())
