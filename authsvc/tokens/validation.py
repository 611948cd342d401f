"""Checking tokens this service signed (and client assertions): signature by kid, typ, time claims.

The key is found by ``kid`` among the keys we trust for the purpose and pins
the algorithm; the header's ``alg`` must match it. The rest of the policy
(sizes, refused header members, strict JSON, time claims) is ``authsvc.jose``'s,
shared with the verifier; JOSE parsing and signature checks are joserfc's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from authsvc.jose import (
    MAX_TOKEN_LENGTH,
    REFUSED_HEADERS,
    registry_for,
    same_alg,
    strict_json,
    strict_protected_header,
    time_problem,
)
from authsvc.keys.ring import LoadedKey

__all__ = ["TokenRejected", "check_times", "check_token", "peek_claims"]

_ANY_REGISTRY = registry_for("RS256")  # extraction only checks sizes and syntax


class TokenRejected(Exception):
    """The token is not one of ours, or not valid now. ``reason`` is for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _extract(token: object) -> jws.CompactSignature:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("malformed")
    if token.count(".") != 2 or not token.isascii():
        raise TokenRejected("malformed")
    try:
        strict_protected_header(token)
        obj = jws.extract_compact(token.encode("ascii"), registry=_ANY_REGISTRY)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
        raise TokenRejected("malformed") from None
    if not isinstance(obj.headers(), dict):
        raise TokenRejected("malformed")
    return obj


def _payload(obj: jws.CompactSignature) -> dict[str, Any]:
    try:
        claims = strict_json(obj.payload)
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise TokenRejected("malformed payload") from None
    if not isinstance(claims, dict):
        raise TokenRejected("malformed payload")
    return claims


def check_times(claims: dict[str, Any], *, now: float, skew: int, iat_required: bool = True) -> None:
    """``exp``, ``iat`` and ``nbf`` against now, with ``skew`` of leeway (``authsvc.jose``)."""
    problem = time_problem(claims, now=now, leeway=skew, iat_required=iat_required)
    if problem is not None:
        raise TokenRejected(problem)


def peek_claims(token: object) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims without checking anything: only for routing a revocation."""
    try:
        obj = _extract(token)
        return obj.headers(), _payload(obj)
    except TokenRejected:
        return None


def check_token(
    token: object,
    *,
    typs: frozenset[str],
    key_for: Callable[[str], LoadedKey | None],
    issuer: str,
    now: float,
    skew: int,
    required: tuple[str, ...] = ("jti", "sub", "client_id"),
    typ_required: bool = True,
    iat_required: bool = True,
    signature: bool = True,
) -> tuple[dict[str, Any], str]:
    """The verified claims and the kid, or TokenRejected.

    ``key_for`` gets the header's kid ("" when absent and ``typ_required`` is
    off, for client assertions whose client has a single key). ``signature``
    False: everything but the signature is checked (the kid's key must still be
    trusted), for a caller that authenticates the exact bytes another way — a
    refresh token by the digest its row keeps. Until then the claims are only
    good for refusing.
    """
    obj = _extract(token)
    header = obj.headers()
    typ = header.get("typ")
    if (typ is not None or typ_required) and (not isinstance(typ, str) or typ.lower() not in typs):
        raise TokenRejected("wrong typ")
    if REFUSED_HEADERS.intersection(header):
        raise TokenRejected("forbidden header")
    kid = header.get("kid", None if typ_required else "")
    if not isinstance(kid, str) or (typ_required and not kid):
        raise TokenRejected("no kid")
    key = key_for(kid)
    if key is None:
        raise TokenRejected("unknown or retired kid")
    alg = header.get("alg")
    if not isinstance(alg, str) or not same_alg(alg, key.alg):
        raise TokenRejected("alg does not match the key")
    if signature:
        try:
            valid = jws.validate_compact(obj, key.key, registry=registry_for(alg))
        except (JoseError, ValueError, TypeError):
            raise TokenRejected("bad signature") from None
        if not valid:
            raise TokenRejected("bad signature")
    claims = _payload(obj)
    if claims.get("iss") != issuer:
        raise TokenRejected("wrong issuer")
    check_times(claims, now=now, skew=skew, iat_required=iat_required)
    for name in required:
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise TokenRejected(f"missing {name}")
    return claims, kid
