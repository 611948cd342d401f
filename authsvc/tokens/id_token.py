"""OpenID Connect ID tokens (Core §2): who signed in, for which client, when.

Signed by the current key like every token here, with ``typ: JWT``. ``at_hash``
ties the ID token to the access token issued with it (Core §3.1.3.6): the left
half of the hash the signing alg uses — SHA-256 for RS256/ES256/PS256, and
SHA-512 for EdDSA, as node-oidc-provider does (Ed25519 signs with SHA-512).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

__all__ = ["ID_TOKEN_TYP", "IdTokenRequest", "at_hash", "id_token_claims"]

ID_TOKEN_TYP = "JWT"  # noqa: S105 (a media type, not a secret)
_SHA512_ALGS = frozenset({"EdDSA", "Ed25519"})


@dataclass(frozen=True, slots=True)
class IdTokenRequest:
    """What the sign-in contributes to an ID token."""

    auth_time: float
    nonce: str | None


def at_hash(access_token: str, alg: str) -> str:
    hash_function = hashlib.sha512 if alg in _SHA512_ALGS else hashlib.sha256
    digest = hash_function(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def id_token_claims(
    *,
    issuer: str,
    sub: str,
    client_id: str,
    sid: str,
    iat: int,
    exp: int,
    request: IdTokenRequest,
    access_token: str,
    alg: str,
) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": sub,
        "aud": client_id,
        "exp": exp,
        "iat": iat,
        "auth_time": int(request.auth_time),
        "sid": sid,
        "at_hash": at_hash(access_token, alg),
    }
    if request.nonce is not None:
        claims["nonce"] = request.nonce
    return claims
