"""The resource owner password grant (RFC 6749 §4.3): the legacy path, for first-party CLIs.

RFC 9700 §2.4 says not to use it; browser and app clients sign in with the
authorization code grant. The credential check (limits, hashing, timing
parity) is ``authsvc.sign_in``, shared with the hosted login page.
"""

from __future__ import annotations

from typing import Any, ClassVar

from authsvc.errors import InvalidRequest
from authsvc.grants.base import GrantRequest, requested_scope
from authsvc.scopes import granted_scopes
from authsvc.sign_in import PasswordCheck
from authsvc.tokens.families import Families, TokenResponse

__all__ = ["PasswordGrant"]


class PasswordGrant:
    grant_type: ClassVar[str] = "password"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "scope": {"type": "string"},
    }
    default_client: ClassVar[bool] = True  # CONTRACT.md: acts as AUTHSVC_DEFAULT_CLIENT_ID

    def __init__(self, passwords: PasswordCheck, families: Families) -> None:
        self.passwords = passwords
        self.families = families

    async def handle(self, request: GrantRequest) -> TokenResponse:
        form, client = request.form, request.client
        username = form.get("username")
        password = form.get("password")
        if username is None:
            raise InvalidRequest("The username parameter is required.")
        if password is None:
            raise InvalidRequest("The password parameter is required.")
        requested = requested_scope(form)
        user = await self.passwords.user(username, password, address=request.address, client_id=client.id)
        allowed = user.scopes if client.scopes is None else user.scopes & client.scopes
        return await self.families.start(
            user, client, granted_scopes(allowed, requested), jkt=request.dpop_jkt
        )
