"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection."""

from __future__ import annotations

from collections.abc import Mapping

from authsvc.errors import InvalidRequest
from authsvc.store.records import Client
from authsvc.tokens.sessions import SessionService, TokenResponse, parse_scope

__all__ = ["handle"]


async def handle(form: Mapping[str, str], client: Client, *, sessions: SessionService) -> TokenResponse:
    token = form.get("refresh_token")
    if token is None:
        raise InvalidRequest("The refresh_token parameter is required.")
    return await sessions.rotate(token, client, parse_scope(form.get("scope")))
