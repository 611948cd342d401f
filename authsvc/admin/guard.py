"""Who may call the admin API: a live access token of ours with ``authsvc:admin``.

The token is checked by ``authsvc.verifier`` — the admin API is a resource
server like any other — against the JWKS fetched from this very service
in-process (an ASGI transport, kept at most one second, so a revoked key stops
working here within a second). The session is then looked up, so a logout,
disable or password change ends an admin's access at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.types import ASGIApp

from authsvc.admin.problems import Problem
from authsvc.rfc6750 import BearerProblem, bearer_token, challenge
from authsvc.store.protocols import SessionStore
from authsvc.verifier import InvalidToken, Verifier

__all__ = ["ADMIN_SCOPE", "Admin", "AdminGuard"]

ADMIN_SCOPE = "authsvc:admin"


@dataclass(frozen=True, slots=True)
class Admin:
    """The caller: the token's subject and client, for the audit trail."""

    sub: str
    client_id: str


class AdminGuard:
    def __init__(
        self, public_app: ASGIApp, issuer: str, audience: str, sessions: SessionStore, now: Any
    ) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(public_app), base_url=issuer)
        self.verifier = Verifier(issuer, audience, http=self.http, max_cache=1, clock=now)
        self.sessions = sessions
        self.now = now

    async def admin(self, request: Request) -> Admin:
        try:
            token = bearer_token(request.headers.getlist("authorization"))
        except BearerProblem as problem:
            raise Problem(
                problem.status,
                problem.description,
                headers={"WWW-Authenticate": challenge("authsvc-admin", error=problem.error)},
            ) from None
        try:
            claims = await self.verifier.verify(token, scopes=[ADMIN_SCOPE])
        except InvalidToken as refused:
            status = 403 if refused.code == "insufficient_scope" else 401
            scope = ADMIN_SCOPE if status == 403 else None
            detail = (
                "The token lacks the authsvc:admin scope." if status == 403 else "The token is not valid."
            )
            raise Problem(
                status,
                detail,
                headers={"WWW-Authenticate": challenge("authsvc-admin", error=refused.code, scope=scope)},
            ) from None
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if not await self.sessions.access_allowed(sid, str(claims.get("jti", "")), self.now()):
            raise Problem(
                401,
                "The token was revoked.",
                headers={"WWW-Authenticate": challenge("authsvc-admin", error="invalid_token")},
            )
        return Admin(sub=str(claims.get("sub")), client_id=str(claims.get("client_id")))

    async def aclose(self) -> None:
        await self.http.aclose()
