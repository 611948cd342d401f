"""Bearer authentication for this service's own protected routes (RFC 6750).

The token is read only from the Authorization header. Besides the signature
and time checks, a user token's session and the token's own jti are looked up,
so a logout or revocation takes effect here at once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from authsvc.errors import InvalidTokenError, OAuthError
from authsvc.jose import ACCESS_TOKEN_TYPES
from authsvc.runtime import Services
from authsvc.tokens.validation import TokenRejected, check_times, check_token

__all__ = ["MissingToken", "access_claims", "verify_access_token"]



class MissingToken(OAuthError):
    """No credentials at all: 401 with a bare challenge (RFC 6750 §3.1)."""

    error = "invalid_request"
    status_code = 401
    description = "An access token is required."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="authsvc"'}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise MissingToken()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError(detail="not a bearer credential")
    return token.strip()


async def verify_access_token(token: str, services: Services) -> dict[str, Any]:
    """Claims of a live access token of ours, for our own audience; else InvalidTokenError."""
    now = services.clock.now()
    skew = services.settings.clock_skew
    keys = services.keys
    # Read once: the key set may be swapped by the poller thread during the check,
    # and a result must be remembered under the set it was checked against.
    generation = keys.generation
    seen = services.recent_tokens.get(token)
    try:
        if seen is not None and seen[0] == generation:
            # The same bytes passed the full check under this very key set: only
            # the clock can have changed the answer since.
            claims = seen[1]
            check_times(claims, now=now, skew=skew)
        else:
            claims, _kid = check_token(
                token,
                typs=ACCESS_TOKEN_TYPES,
                key_for=keys.access_token_key,
                issuer=services.tokens.issuer,
                now=now,
                skew=skew,
            )
            services.recent_tokens.put(token, (generation, claims))
    except TokenRejected as exc:
        raise InvalidTokenError(detail=exc.reason) from None
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if services.settings.default_audience not in audiences:
        raise InvalidTokenError(detail="wrong audience")
    sid = claims.get("sid")
    if sid is not None and not isinstance(sid, str):
        raise InvalidTokenError(detail="malformed sid")
    jti = claims["jti"]
    allowed = await services.recent_access.get_or_load(
        (sid, jti), lambda: services.session_store.access_allowed(sid, jti, now)
    )
    if not allowed:
        raise InvalidTokenError(detail="revoked")
    return claims


async def access_claims(request: Request, services: Services) -> dict[str, Any]:
    return await verify_access_token(_bearer(request), services)
