"""A proof's header, once it passed, is remembered by its encoded bytes (``authsvc.dpop``).

What the cache may skip is only what the header's bytes alone decide (its
JSON, typ, alg, the key and its thumbprint); the signature, the claims and the
request they name are checked on every proof. Each attack below reuses a
header that passed a moment before.
"""

from __future__ import annotations

import time

import pytest

from authsvc import dpop
from authsvc.dpop import DpopError, check_proof
from tests.dpop_support import b64, make_proof, new_key, public_jwk, sign_parts

URL = "https://as.example/token"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_a_remembered_header_does_not_vouch_for_the_rest(alg: str) -> None:
    key, other = new_key(alg), new_key(alg)
    now = time.time()
    first = make_proof(key, alg, "POST", URL, now=now)
    check_proof(first, method="POST", url=URL, now=now, skew=60)
    header, payload, signature = first.split(".")
    assert header in dpop._header_checked, "expected the passed header remembered"

    # The same header over another payload, the first signature kept.
    changed = make_proof(key, alg, "POST", URL, now=now).split(".")[1]
    with pytest.raises(DpopError, match="bad signature"):
        check_proof(f"{header}.{changed}.{signature}", method="POST", url=URL, now=now, skew=60)
    # The same header, signed by another key.
    by_other = make_proof(other, alg, "POST", URL, now=now).split(".")[2]
    with pytest.raises(DpopError, match="bad signature"):
        check_proof(f"{header}.{payload}.{by_other}", method="POST", url=URL, now=now, skew=60)
    # The same header, a good signature, the wrong method.
    with pytest.raises(DpopError, match="htm"):
        check_proof(make_proof(key, alg, "GET", URL, now=now), method="POST", url=URL, now=now, skew=60)


def test_a_refused_header_is_never_remembered() -> None:
    key = new_key("EdDSA")
    now = time.time()
    proof = make_proof(key, "EdDSA", "POST", URL, now=now, extra_header={"typ": "JWT"})
    with pytest.raises(DpopError, match="typ"):
        check_proof(proof, method="POST", url=URL, now=now, skew=60)
    assert proof.split(".")[0] not in dpop._header_checked
    with pytest.raises(DpopError, match="typ"):
        check_proof(proof, method="POST", url=URL, now=now, skew=60)


def test_the_remembered_headers_are_bounded() -> None:
    now = time.time()
    key = new_key("EdDSA")
    for i in range(dpop._header_checked.size + 50):  # a header of its own each (another kid)
        proof = make_proof(key, "EdDSA", "POST", URL, now=now, extra_header={"kid": b64(str(i).encode())})
        check_proof(proof, method="POST", url=URL, now=now, skew=60)
    assert len(dpop._header_checked) <= dpop._header_checked.size


@pytest.mark.parametrize("member", [{"kid": 5}, {"cty": ["a"]}, {"x5t#S256": 7}])
def test_joserfc_header_rules_still_refuse_when_the_signature_check_skips_them(member: dict) -> None:
    """The signature is checked with a registry that does not repeat joserfc's header check
    (``jose.passed_header_registry_for``): the header policy must have run it, on first sight
    and every time after (a refused header is never remembered)."""
    key = new_key("EdDSA")
    now = time.time()
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": public_jwk(key), **member}
    claims = {"jti": "j1", "htm": "POST", "htu": URL, "iat": int(now)}
    proof = sign_parts(key, "EdDSA", header, claims)  # joserfc's signer would refuse the header
    for _ in range(2):
        with pytest.raises(DpopError):
            check_proof(proof, method="POST", url=URL, now=now, skew=60)
    assert proof.split(".")[0] not in dpop._header_checked
