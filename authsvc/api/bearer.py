"""Bearer authentication for this service's own protected routes (RFC 6750).

The token is read only from the Authorization header. Besides the signature
and time checks, a user token's session and the token's own jti are looked up,
so a logout or revocation takes effect here at once (every process within the
half-second the "still allowed" answers are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from authsvc.clock import Clock
from authsvc.errors import InvalidBearerRequest, InvalidTokenError, MissingToken
from authsvc.jose import ACCESS_TOKEN_TYPES
from authsvc.keys.ring import KeyRing
from authsvc.rfc6750 import BearerProblem, bearer_token
from authsvc.store.protocols import SessionStore
from authsvc.tokens.validation import TokenRejected, check_times, check_token
from authsvc.ttl_cache import TtlCache

__all__ = ["BearerCheck"]


def _bearer(request: Request) -> str:
    try:
        return bearer_token(request.headers.getlist("authorization"))
    except BearerProblem as problem:
        if problem.status == 400:
            raise InvalidBearerRequest(problem.description) from None
        raise MissingToken() from None


@dataclass(frozen=True, slots=True)
class BearerCheck:
    """Checks the access tokens presented to this service's own routes."""

    keys: KeyRing
    clock: Clock
    issuer: str
    audience: str
    skew: int
    sessions: SessionStore
    # Access tokens whose signature and claims passed under a key-set generation.
    verified: TtlCache[str, tuple[int, dict[str, Any]]]
    # (sid, jti) -> still allowed, kept up to half a second (CONTRACT.md allows 1 s).
    allowed: TtlCache[tuple[str | None, str], bool]

    async def claims(self, request: Request, *, any_audience: bool = False) -> dict[str, Any]:
        """Claims of the request's live access token of ours, for our audience (any audience:
        /userinfo serves every access token this issuer signed); else InvalidTokenError."""
        token = _bearer(request)
        now = self.clock.now()
        # Read once: the key set may be swapped by the poller thread during the check,
        # and a result must be remembered under the set it was checked against.
        generation = self.keys.generation
        seen = self.verified.get(token)
        try:
            if seen is not None and seen[0] == generation:
                # The same bytes passed the full check under this very key set: only
                # the clock can have changed the answer since.
                claims = seen[1]
                check_times(claims, now=now, skew=self.skew)
            else:
                claims, _kid = check_token(
                    token,
                    typs=ACCESS_TOKEN_TYPES,
                    key_for=self.keys.access_token_key,
                    issuer=self.issuer,
                    now=now,
                    skew=self.skew,
                )
                self.verified.put(token, (generation, claims))
        except TokenRejected as exc:
            raise InvalidTokenError(detail=exc.reason) from None
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any_audience and self.audience not in audiences:
            raise InvalidTokenError(detail="wrong audience")
        sid = claims.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise InvalidTokenError(detail="malformed sid")
        jti = claims["jti"]
        allowed = await self.allowed.get_or_load(
            (sid, jti), lambda: self.sessions.access_allowed(sid, jti, now)
        )
        if not allowed:
            raise InvalidTokenError(detail="revoked")
        return claims
