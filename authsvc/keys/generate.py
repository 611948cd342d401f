"""Key pair generation with ``cryptography``; kid is the RFC 7638 thumbprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authsvc.keys.encryption import encrypt_private_key

__all__ = ["GeneratedKey", "JoseKey", "PrivateKey", "generate_key", "jose_key", "private_pem"]

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
JoseKey = RSAKey | OKPKey | ECKey

RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key: PrivateKey


def _new_private(alg: str) -> PrivateKey:
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if alg in ("EdDSA", "Ed25519"):
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def jose_key(key: Any) -> JoseKey:
    """Wrap a cryptography key (private or public) for joserfc."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    raise TypeError("unsupported key type")


def public_jwk(key: JoseKey, kid: str, alg: str) -> dict[str, Any]:
    """The JWKS entry: public members only, plus kid, alg and use."""
    jwk = {k: v for k, v in key.as_dict(private=False).items() if k not in ("kid", "alg", "use")}
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def generate_key(alg: str) -> GeneratedKey:
    """A fresh key pair for ``alg``, its kid and its public JWK."""
    private = _new_private(alg)
    wrapped = jose_key(private.public_key())
    kid = wrapped.thumbprint()
    return GeneratedKey(kid=kid, alg=alg, public_jwk=public_jwk(wrapped, kid, alg), private_key=private)


def private_pem(key: PrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase when one is configured (see ``encryption``)."""
    return encrypt_private_key(key, passphrase)
