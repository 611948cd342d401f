"""The pure JWKS rules: which published keys count, and the cache lifetime arithmetic."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from verifier_support import Signer, b64

from authsvc.verifier.keyset import JWKSError, cache_lifetime, parse_jwks


def jwks(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_keeps_signature_keys_with_their_algs(
    rsa_signer: Signer, ed_signer: Signer, ec_signer: Signer, ps_signer: Signer
) -> None:
    keys = parse_jwks(jwks(rsa_signer.jwk, ed_signer.jwk, ec_signer.jwk, ps_signer.jwk))
    assert {kid: key.algs for kid, key in keys.items()} == {
        rsa_signer.kid: {"RS256"},
        ed_signer.kid: {"EdDSA", "Ed25519"},  # one algorithm under two names (RFC 9864)
        ec_signer.kid: {"ES256"},
        ps_signer.kid: {"PS256"},
    }


def test_infers_alg_from_key_type(rsa_signer: Signer, ed_signer: Signer, ec_signer: Signer) -> None:
    bare = [{k: v for k, v in s.jwk.items() if k != "alg"} for s in (rsa_signer, ed_signer, ec_signer)]
    keys = parse_jwks(jwks(*bare))
    assert keys[rsa_signer.kid].algs == {"RS256"}
    assert keys[ed_signer.kid].algs == {"EdDSA", "Ed25519"}
    assert keys[ec_signer.kid].algs == {"ES256"}


@pytest.mark.parametrize(
    "mutation",
    [
        {"use": "enc"},
        {"kid": None},
        {"kid": ""},
        {"kid": 12},
        {"kid": "k" * 300},
        {"alg": "HS256"},
        {"alg": "none"},
        {"alg": "ES256"},  # an RSA key cannot be an ES256 key
        {"alg": "RS512"},  # not an algorithm authsvc accepts
        {"key_ops": ["encrypt"]},
        {"key_ops": "verify"},
        {"n": "AQAB"},  # not a real modulus
        {"n": 5},
        {"e": None},
    ],
)
def test_skips_unusable_entries(rsa_signer: Signer, mutation: dict[str, Any]) -> None:
    entry = {**rsa_signer.jwk, **mutation}
    assert parse_jwks(jwks(entry)) == {}


def test_skips_symmetric_and_foreign_curves() -> None:
    assert parse_jwks(jwks({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})) == {}
    assert parse_jwks(jwks({"kty": "OKP", "crv": "X25519", "x": "A" * 43, "kid": "x"})) == {}
    assert parse_jwks(jwks({"kty": "EC", "crv": "P-384", "x": "A", "y": "A", "kid": "p384"})) == {}


def test_skips_short_rsa_keys_without_warning() -> None:
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    entry = {"kty": "RSA", "n": b64(numbers.n.to_bytes(128, "big")), "e": "AQAB", "kid": "weak"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_jwks(jwks(entry)) == {}


def test_imports_public_parts_only(rsa_signer: Signer) -> None:
    leaked = {**rsa_signer.key.as_dict(private=True), "kid": rsa_signer.kid, "alg": "RS256"}
    key = parse_jwks(jwks(leaked))[rsa_signer.kid]
    assert not key.key.is_private


def test_first_entry_wins_for_a_duplicate_kid(rsa_signer: Signer, ed_signer: Signer) -> None:
    keys = parse_jwks(jwks(rsa_signer.jwk, {**ed_signer.jwk, "kid": rsa_signer.kid}))
    assert keys[rsa_signer.kid].algs == {"RS256"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"keys": {}}',
        b'{"kys": []}',
        b"[" * 5000,
        b'{"keys": [' + b" " * (1 << 21) + b"]}",
    ],
)
def test_unusable_documents(body: bytes) -> None:
    with pytest.raises(JWKSError):
        parse_jwks(body)


def test_empty_key_set_is_valid() -> None:
    assert parse_jwks(b'{"keys": []}') == {}


@pytest.mark.parametrize(
    ("cache_control", "age", "min_cache", "max_cache", "expected"),
    [
        (None, None, 1, None, 300),
        ("", None, 1, None, 300),
        ("max-age=600", None, 1, None, 600),
        ("public, max-age=600", "100", 1, None, 500),
        ("Public, MAX-AGE=600", None, 1, None, 600),
        ('max-age="60"', None, 1, None, 60),
        ("max-age=600", "700", 1, None, 1),
        ("max-age=600", "700", 0, None, 0),
        ("max-age=600", "junk", 1, None, 600),
        ("max-age=-5", None, 1, None, 300),
        ("max-age=600", None, 1, 120, 120),
        ("max-age=5", None, 30, 120, 30),
        ("no-store", None, 3, None, 3),
        ("no-cache", None, 3, None, 3),
        ("private, no-cache=set-cookie", None, 3, None, 3),
        ("s-maxage=60", None, 1, None, 300),
    ],
)
def test_cache_lifetime(
    cache_control: str | None, age: str | None, min_cache: float, max_cache: float | None, expected: float
) -> None:
    assert cache_lifetime(cache_control, age, min_cache=min_cache, max_cache=max_cache) == expected
