"""The refresh token grant (RFC 6749 §6): rotation and reuse detection (``tokens.families``)."""

from __future__ import annotations

from typing import Any, ClassVar

from authsvc.errors import InvalidRequest
from authsvc.grants.base import GrantRequest, requested_scope
from authsvc.tokens.families import Families, TokenResponse

__all__ = ["RefreshTokenGrant"]


class RefreshTokenGrant:
    grant_type: ClassVar[str] = "refresh_token"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {
        "refresh_token": {"type": "string"},
        "scope": {"type": "string"},
    }
    default_client: ClassVar[bool] = True

    def __init__(self, families: Families) -> None:
        self.families = families

    async def handle(self, request: GrantRequest) -> TokenResponse:
        token = request.form.get("refresh_token")
        if token is None:
            raise InvalidRequest("The refresh_token parameter is required.")
        return await self.families.rotate(
            token, request.client, requested_scope(request.form), jkt=request.dpop_jkt
        )
