"""DPoP (RFC 9449) from the client's side, for the tests: keys, proofs, thumbprints, ``ath``.

``make_proof`` builds a well-formed proof with joserfc; ``sign_parts`` signs
exactly the header and payload bytes it is given (duplicate members, NaN,
non-JSON payloads); ``forged`` assembles ``none`` and HS256 proofs by hand,
since no JOSE library will make those. The thumbprint (RFC 7638) and ``ath``
(RFC 9449 §4.2) are computed here from their definitions, not taken from the
service's code, so the tests check the service against the RFCs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import warnings
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authsvc.jose import registry_for
from tests.support import ISSUER

__all__ = [
    "ALGS",
    "TOKEN_URL",
    "Key",
    "access_token_hash",
    "b64",
    "challenge_params",
    "dpop_headers",
    "ec_p384_key",
    "forged",
    "make_proof",
    "new_key",
    "public_jwk",
    "rsa_1024_key",
    "sign_parts",
    "thumbprint",
]

Key = ECKey | OKPKey | RSAKey

#: Every algorithm a proof may use (spec/dpop.md), in the order the metadata lists them.
ALGS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
TOKEN_URL = ISSUER + "/token"

_RSA_KEYS: dict[int, RSAKey] = {}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(alg: str) -> Key:
    """A fresh key for ``alg`` (RSA keys are made once per process: they are slow to generate)."""
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg in ("EdDSA", "Ed25519"):
        return OKPKey.generate_key("Ed25519")
    if alg in ("RS256", "PS256"):
        return RSAKey.generate_key(2048)
    raise ValueError(alg)


def _import_quietly(kind: type[Key], pem: bytes) -> Key:
    with warnings.catch_warnings():  # joserfc rightly warns about weak keys: that is the point
        warnings.simplefilter("ignore", SecurityWarning)
        return kind.import_key(pem)


def _pem(private: Any) -> bytes:
    return private.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rsa_1024_key() -> RSAKey:
    key = _RSA_KEYS.get(1024)
    if key is None:
        key = _RSA_KEYS[1024] = _import_quietly(
            RSAKey, _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
        )
    return key  # type: ignore[return-value]


def ec_p384_key() -> ECKey:
    return _import_quietly(ECKey, _pem(ec.generate_private_key(ec.SECP384R1())))  # type: ignore[return-value]


def public_jwk(key: Key) -> dict[str, Any]:
    return dict(key.as_dict(private=False))


def thumbprint(jwk: Mapping[str, Any] | Key) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace."""
    if not isinstance(jwk, Mapping):
        jwk = public_jwk(jwk)
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url(SHA-256(ASCII of the access token))."""
    return b64(hashlib.sha256(access_token.encode("ascii")).digest())


def make_proof(
    key: Key,
    alg: str,
    method: str,
    url: str,
    *,
    ath: str | None = None,
    nonce: str | None = None,
    iat: float | None = None,
    jti: str | None = None,
    extra_header: Mapping[str, Any] | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A DPoP proof for ``method`` ``url`` signed by ``key`` (joserfc).

    ``iat`` defaults to ``now`` (the harness clock's time; the wall clock when
    None). ``extra_header`` / ``extra_claims`` add or replace members; a value
    of None removes the member (``extra_header={"typ": None}``: no ``typ``).
    """
    header: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key)}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(iat if iat is not None else now if now is not None else _wall_clock()),
    }
    if ath is not None:
        claims["ath"] = ath
    if nonce is not None:
        claims["nonce"] = nonce
    header = _merged(header, extra_header)
    claims = _merged(claims, extra_claims)
    return jws.serialize_compact(header, json.dumps(claims), key, registry=registry_for(alg))


def sign_parts(
    key: Key, alg: str, header: bytes | Mapping[str, Any], payload: bytes | Mapping[str, Any]
) -> str:
    """A compact JWS over exactly these header and payload bytes, signed by ``key`` as ``alg``
    (the signature is joserfc's; nothing is re-encoded or checked)."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = b64(head) + "." + b64(body)
    signature = registry_for(alg).get_alg(alg).sign(signing_input.encode(), key)
    return signing_input + "." + b64(signature)


def forged(alg: str, header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes = b"s" * 32) -> str:
    """An ``alg: none`` or HS256 proof assembled by hand (no library will sign these)."""
    signing_input = b64(json.dumps({**header, "alg": alg}).encode()) + "." + b64(json.dumps(claims).encode())
    if alg == "none":
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def dpop_headers(access_token: str | None, proof: str | None) -> dict[str, str]:
    """``Authorization: DPoP <token>`` and ``DPoP: <proof>`` (either left out when None)."""
    headers: dict[str, str] = {}
    if access_token is not None:
        headers["Authorization"] = "DPoP " + access_token
    if proof is not None:
        headers["DPoP"] = proof
    return headers


def challenge_params(response: httpx.Response, scheme: str = "DPoP") -> dict[str, str] | None:
    """The auth-params of ``response``'s ``WWW-Authenticate`` challenge of ``scheme`` (None: none).

    Every header line and every challenge in a line are read (RFC 9110 §11.6.1:
    ``Bearer realm="x", DPoP algs="ES256"`` is two challenges); values are the
    quoted strings the service writes.
    """
    found: dict[str, dict[str, str]] = {}
    for line in response.headers.get_list("www-authenticate"):
        current: dict[str, str] | None = None
        for match in _CHALLENGE_TOKENS.finditer(line):
            name, quoted, plain = match.groups()
            if quoted is None and plain is None:  # a bare token: the next challenge's scheme
                current = found.setdefault(name.lower(), {})
            elif current is not None:
                current[name.lower()] = quoted if quoted is not None else plain
    return found.get(scheme.lower())


_CHALLENGE_TOKENS = re.compile(r'([A-Za-z0-9_.~+/-]+)(?:\s*=\s*(?:"([^"]*)"|([A-Za-z0-9_.~+/-]+)))?')


def _merged(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for name, value in (extra or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _wall_clock() -> float:
    import time

    return time.time()
