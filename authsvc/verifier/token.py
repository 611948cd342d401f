"""The token side of verification: parse, check the header, the signature, the claims.

Pure functions over a token string, a key and a time; JOSE itself (base64url,
JSON header, signature algorithms) is joserfc's, and the policy (sizes, refused
header members, ``typ``, strict JSON, time claims) is ``authsvc.jose``'s, the
same the server applies. What this module adds: three non-empty base64url
segments (joserfc also refuses non-canonical base64url, so a token has one
spelling), the algorithm pinned by the key, the RFC 9068 claims, and the
machine-readable reasons of ``InvalidToken``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jws
from joserfc.errors import ExceededSizeError, JoseError

from authsvc.jose import (
    ACCESS_TOKEN_TYPES,
    ASYMMETRIC_ALGS,
    MAX_TOKEN_LENGTH,
    REFUSED_HEADERS,
    PassedHeaders,
    PinnedRegistry,
    passed_header_registry_for,
    strict_json,
    strict_protected_header,
    time_problem,
)
from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.keyset import MAX_KID_LENGTH, VerificationKey

__all__ = [
    "ParsedToken",
    "check_claims",
    "check_scopes",
    "check_signature",
    "parse_token",
]

# Three non-empty base64url segments, matched in one pass.
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Size limits and header-name checks only; the algorithm is pinned per key later.
_PARSE_REGISTRY: Final = PinnedRegistry(ASYMMETRIC_ALGS)
# Header segments that passed the header policy -> (alg, kid).
_ACCEPTED_HEADERS: Final[PassedHeaders[tuple[str, str]]] = PassedHeaders(256)


def _invalid(reason: str) -> InvalidToken:
    return InvalidToken("invalid_token", reason)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A structurally valid token whose header passed policy; not yet verified."""

    alg: str
    kid: str
    compact: jws.CompactSignature


def parse_token(token: object) -> ParsedToken:
    """Split and decode a compact JWS and apply the header policy.

    The header policy depends on the header segment alone, and a key's tokens
    share one header: a segment that passed it once is remembered (a few hundred
    at most) and not decoded twice or re-checked. joserfc still parses every token.
    """
    if not isinstance(token, str):
        raise _invalid("malformed")
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid("too_large")
    if _COMPACT.fullmatch(token) is None:
        raise _invalid("malformed")
    segments = token.split(".")
    accepted = _ACCEPTED_HEADERS.get(segments[0])
    try:
        if accepted is None:
            strict_protected_header(token)
        compact = jws.extract_compact(token.encode("ascii"), registry=_PARSE_REGISTRY)
    except ExceededSizeError as exc:
        raise _invalid("too_large") from exc
    except (JoseError, ValueError, TypeError, RecursionError) as exc:
        raise _invalid("malformed") from exc
    if accepted is None:
        accepted = _header_policy(compact.headers())
        _ACCEPTED_HEADERS.remember(segments[0], accepted)
    alg, kid = accepted
    return ParsedToken(alg=alg, kid=kid, compact=compact)


def _header_policy(header: object) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a decoded header that passes the policy, else InvalidToken."""
    if not isinstance(header, dict) or REFUSED_HEADERS.intersection(header):
        raise _invalid("malformed")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS:
        raise _invalid("unsupported_algorithm")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise _invalid("bad_type")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise _invalid("no_matching_key")
    try:
        _PARSE_REGISTRY.check_header(header)  # joserfc's own member types and names
    except JoseError as exc:
        raise _invalid("malformed") from exc
    return alg, kid


def check_signature(token: ParsedToken, key: VerificationKey) -> None:
    """Verify with the key's algorithm; the token's ``alg`` must be one the key allows.

    joserfc's ``validate_compact`` does it, with the registry pinned to the
    token's algorithm: the signing input, the signature's decoding and the
    check are the JOSE library's, never ours.
    """
    if token.alg not in key.algs:
        raise _invalid("unsupported_algorithm")
    try:
        # The header passed ``check_header`` in ``parse_token`` (a ParsedToken is only made then).
        registry = passed_header_registry_for(token.alg)
        valid = jws.validate_compact(token.compact, key.key, registry=registry)
    except (JoseError, ValueError):
        valid = False
    if not valid:
        raise _invalid("bad_signature")


def check_claims(
    payload: bytes,
    *,
    issuer: str,
    audiences: frozenset[str],
    leeway: float,
    now: float,
) -> dict[str, Any]:
    """Decode the (already authenticated) payload and check RFC 9068 claims."""
    try:
        claims = strict_json(payload)
    except (ValueError, RecursionError) as exc:
        raise _invalid("malformed") from exc
    if not isinstance(claims, dict):
        raise _invalid("malformed")

    if "iss" not in claims:
        raise _invalid("missing_claim")
    if claims["iss"] != issuer or not isinstance(claims["iss"], str):
        raise _invalid("bad_issuer")

    if "aud" not in claims:
        raise _invalid("missing_claim")
    aud = claims["aud"]
    token_audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(token_audiences, list) or not all(isinstance(a, str) for a in token_audiences):
        raise _invalid("bad_audience")
    if audiences.isdisjoint(token_audiences):
        raise _invalid("bad_audience")

    problem = time_problem(claims, now=now, leeway=leeway)
    if problem is not None:
        raise _invalid(problem)

    for name in ("sub", "jti", "client_id"):
        if name not in claims:
            raise _invalid("missing_claim")
        if not isinstance(claims[name], str) or not claims[name]:
            raise _invalid("malformed")
    if "scope" in claims and not isinstance(claims["scope"], str):
        raise _invalid("malformed")
    return claims


def check_scopes(claims: dict[str, Any], required: Collection[str]) -> None:
    """Every required scope must be in the token's space-separated ``scope``."""
    if not required:
        return
    granted = set(str(claims.get("scope", "")).split(" "))
    if not all(scope in granted for scope in required):
        raise InvalidToken("insufficient_scope", "insufficient_scope", scope=" ".join(required))
