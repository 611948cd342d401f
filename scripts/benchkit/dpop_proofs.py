"""DPoP proofs (RFC 9449) made by the bench, the client's side: one key per row, proofs signed ahead.

Every request of a DPoP row carries a fresh proof (its own ``jti``, a current
``iat``, ``ath`` at resources), so the proofs of a timed run are signed before
it, one per request it may send, and the load generator only sends bytes. They
are signed with ``cryptography`` directly (the header, with the public key,
encoded once; the payload per proof), each ``iat`` the time it was signed: the
run must start and end within the server's skew window (``PoolTooSlow``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["ProofKey", "ProofPool", "access_token_hash", "new_proof_key", "sign_proofs", "thumbprint"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    return _b64(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256) of the access token's ASCII bytes."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


@dataclass(frozen=True)
class ProofKey:
    """A client's DPoP key: ``alg`` (RS256 RSA-2048, EdDSA Ed25519, ES256 P-256), its public JWK."""

    alg: str
    private: Any
    jwk: dict[str, str]

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        if self.alg == "RS256":
            return bytes(self.private.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return bytes(self.private.sign(data))


def new_proof_key(alg: str) -> ProofKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if alg == "RS256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = rsa_key.public_key().public_numbers()
        return ProofKey(alg, rsa_key, {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)})
    if alg in ("EdDSA", "Ed25519"):
        ed_key = ed25519.Ed25519PrivateKey.generate()
        raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return ProofKey(alg, ed_key, {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)})
    if alg == "ES256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        point = ec_key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(point.x.to_bytes(32, "big")),
            "y": _b64(point.y.to_bytes(32, "big")),
        }
        return ProofKey(alg, ec_key, jwk)
    raise ValueError(f"no DPoP proof key for {alg}")


@dataclass
class ProofPool:
    proofs: list[str]
    signed_at: float  # wall-clock time of the first proof's iat
    seconds: float  # how long signing them took

    def __len__(self) -> int:
        return len(self.proofs)


def sign_proofs(
    key: ProofKey, method: str, url: str, count: int, *, access_token: str | None = None
) -> ProofPool:
    """``count`` proofs for ``method`` ``url`` (``ath`` of ``access_token`` when given), each with its own
    ``jti`` and the time it was signed as ``iat``."""
    header = _b64(
        json.dumps({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.jwk}, separators=(",", ":")).encode()
    )
    ath = access_token_hash(access_token) if access_token is not None else None
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    proofs: list[str] = []
    start = time.time()
    for _ in range(count):
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url}
        claims["iat"] = int(time.time())
        if ath is not None:
            claims["ath"] = ath
        signing_input = header + "." + _b64(dumps(claims).encode())
        proofs.append(signing_input + "." + _b64(key.sign(signing_input.encode())))
    return ProofPool(proofs, start, time.time() - start)
