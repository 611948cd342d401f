"""Claims in, signed compact JWS out, with the current key's kid in the header."""

from __future__ import annotations

import json
import secrets
from typing import Any

from joserfc import jws

from authsvc.jose import registry_for
from authsvc.keys.manager import LoadedKey

__all__ = ["ACCESS_TYP", "REFRESH_TYP", "new_jti", "sign"]

ACCESS_TYP = "at+jwt"  # RFC 9068
REFRESH_TYP = "rt+jwt"  # ours: never accepted where an access token is expected


def new_jti() -> str:
    return secrets.token_urlsafe(18)


def sign(key: LoadedKey, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS of ``claims`` signed with ``key``."""
    header = {"alg": key.alg, "kid": key.kid, "typ": typ}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, key.key, registry=registry_for(key.alg))
