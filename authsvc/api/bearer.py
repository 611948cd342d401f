"""Access tokens at this service's own protected routes: Bearer (RFC 6750) and DPoP (RFC 9449).

The token is read only from the Authorization header. A token bound to a DPoP
key (``cnf.jkt``) is accepted only with the ``DPoP`` scheme and a proof by that
key naming it (``ath``); sent as Bearer it is refused, as is an unbound token
sent with the DPoP scheme. Besides the signature
and time checks, a user token's session and the token's own jti are looked up,
so a logout or revocation takes effect here at once (every process within the
half-second the "still allowed" answers are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from authsvc.clock import Clock
from authsvc.dpop import DpopError
from authsvc.dpop_gate import DpopGate
from authsvc.errors import DpopResourceError, InvalidBearerRequest, InvalidTokenError, MissingToken
from authsvc.jose import ACCESS_TOKEN_TYPES
from authsvc.keys.ring import KeyRing
from authsvc.rfc6750 import BearerProblem, bearer_token
from authsvc.store.protocols import SessionStore
from authsvc.tokens.validation import TokenRejected, check_times, check_token
from authsvc.ttl_cache import TtlCache

__all__ = ["BearerCheck"]


def _credentials(request: Request) -> tuple[bool, str]:
    """(DPoP scheme?, the access token) of the request's Authorization header."""
    lines = request.headers.getlist("authorization")
    if len(lines) == 1:
        scheme, _, token = lines[0].strip().partition(" ")
        if scheme.lower() == "dpop":
            if not token.strip():
                raise DpopResourceError("invalid_request", "The DPoP credential is empty.")
            return True, token.strip()
    try:
        return False, bearer_token(lines)
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
    dpop: DpopGate

    async def claims(self, request: Request, *, any_audience: bool = False) -> dict[str, Any]:
        """Claims of the request's live access token of ours, for our audience (any audience:
        /userinfo serves every access token this issuer signed); else InvalidTokenError (or
        DpopResourceError for a request using the DPoP scheme)."""
        dpop, token = _credentials(request)
        arrived = self.dpop.now()  # the session's liveness may be read from the database first
        try:
            claims = await self._claims(token, any_audience)
        except InvalidTokenError as refused:
            if dpop:
                raise DpopResourceError(
                    "invalid_token", refused.public_description, detail=refused.detail
                ) from None
            raise
        cnf = claims.get("cnf")
        bound = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not dpop:
            if bound is not None:
                raise InvalidTokenError(
                    "This access token is bound to a DPoP key.", detail="bound token as Bearer"
                )
            return claims
        if bound is None:
            raise DpopResourceError("invalid_token", "This access token is not bound to a DPoP key.")
        if len(request.headers.getlist("dpop")) > 1:
            raise DpopResourceError("invalid_request", "Send one DPoP header.", status=400)
        try:
            proof = await self.dpop.proof(request, access_token=token, bound_to=bound, arrived=arrived)
        except DpopError as refused:
            nonce = self.dpop.nonce() if refused.error == "use_dpop_nonce" else None
            raise DpopResourceError(
                refused.error,
                "The DPoP proof is not by the token's key."
                if refused.error == "invalid_token"
                else "The DPoP proof is invalid.",
                nonce=nonce,
                detail=refused.reason,
            ) from None
        if proof is None:
            raise DpopResourceError("invalid_dpop_proof", "A DPoP proof is required.", detail="no proof")
        return claims

    async def _claims(self, token: str, any_audience: bool) -> dict[str, Any]:
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
