"""Recognising a presented token of ours, for revocation and introspection.

The ``token_type_hint`` only orders the attempts (RFC 7009 §2.1): a token is
tried as the hinted type first, then as the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from authsvc.jose import ACCESS_TOKEN_TYPES
from authsvc.keys.ring import KeyRing
from authsvc.store.protocols import SessionStore
from authsvc.tokens.issuer import REFRESH_TYP
from authsvc.tokens.validation import TokenRejected, check_token

__all__ = ["PresentedToken", "identify", "is_active"]

TokenKind = Literal["access_token", "refresh_token"]
_TYPS: dict[TokenKind, frozenset[str]] = {
    "access_token": ACCESS_TOKEN_TYPES,
    "refresh_token": frozenset({REFRESH_TYP}),
}


@dataclass(frozen=True, slots=True)
class PresentedToken:
    kind: TokenKind
    claims: dict[str, Any]


def identify(
    token: str, hint: str | None, keys: KeyRing, issuer: str, now: float, skew: int
) -> PresentedToken | None:
    """The token's kind and verified claims, or None if it is not a valid token of ours."""
    order: list[TokenKind] = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        order.reverse()
    for kind in order:
        key_for = keys.access_token_key if kind == "access_token" else keys.refresh_token_key
        try:
            claims, _kid = check_token(
                token, typs=_TYPS[kind], key_for=key_for, issuer=issuer, now=now, skew=skew
            )
        except TokenRejected:
            continue
        if kind == "access_token" and not _has_audience(claims):
            continue  # RFC 9068 §2.2: aud is required
        return PresentedToken(kind, claims)
    return None


def _has_audience(claims: dict[str, Any]) -> bool:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return bool(aud)
    return isinstance(aud, list) and bool(aud) and all(isinstance(a, str) and a for a in aud)


async def is_active(token: PresentedToken, store: SessionStore, now: float) -> bool:
    """Whether the server would still honour it (session live, not spent or revoked).

    ``identify`` allows the clock-skew leeway so that a revocation still finds
    a token just past its ``exp``; an introspection answer has no such leeway:
    the token is inactive from its ``exp`` on (RFC 7662 §2.2).
    """
    claims = token.claims
    if float(claims["exp"]) <= now:
        return False
    if token.kind == "access_token":
        sid = claims.get("sid")
        return await store.access_allowed(sid if isinstance(sid, str) else None, claims["jti"], now)
    row = await store.token(claims["jti"])
    if (
        row is None
        or row.spent_at is not None
        or row.expires_at <= now
        or row.client_id != claims["client_id"]
    ):
        return False
    session = await store.get(row.session_id)
    return session is not None and session.revoked_at is None and session.expires_at > now
