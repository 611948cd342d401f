"""Valid tokens pass with every supported algorithm; each claim rule refuses its violation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from verifier_support import AUDIENCE, DELETE, ISSUER, FakeClock, Minter, Signer

from authsvc.verifier import InvalidToken, Verifier


async def refused(verifier: Verifier, token: Any, **kwargs: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, **kwargs)
    return caught.value


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ed_signer", "ec_signer", "ps_signer"])
async def test_valid_token_returns_its_claims(
    signer_name: str, request: pytest.FixtureRequest, verifier: Verifier, mint: Minter
) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    token = mint(signer)
    claims = await verifier.verify(token)
    assert claims["sub"] == "user-7f3a"
    assert claims["iss"] == ISSUER
    assert claims["scope"] == "orders:read profile"


async def test_ed25519_alg_accepted_for_an_okp_key_without_alg(
    make_verifier: Callable[..., Verifier], jwks: Any, ed_signer: Signer, mint: Minter
) -> None:
    """RFC 9864: "Ed25519" and "EdDSA" name the same algorithm on an Ed25519 key."""
    bare = Signer(ed_signer.key, "EdDSA", publish_alg=False)
    jwks.keys = [bare.jwk]
    verifier = make_verifier()
    await verifier.verify(mint(bare))
    await verifier.verify(mint(Signer(ed_signer.key, "Ed25519")))


async def test_declared_key_alg_is_binding(
    make_verifier: Callable[..., Verifier], jwks: Any, rsa_signer: Signer, mint: Minter
) -> None:
    """The RSA key is published for RS256: the same key signing PS256 is refused."""
    verifier = make_verifier()
    token = mint(Signer(rsa_signer.key, "PS256"))
    assert (await refused(verifier, token)).reason == "unsupported_algorithm"


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"])
async def test_access_token_types_case_insensitive(verifier: Verifier, mint: Minter, typ: str) -> None:
    await verifier.verify(mint(header={"typ": typ}))


async def test_audience_list_in_token_and_in_verifier(
    make_verifier: Callable[..., Verifier], mint: Minter
) -> None:
    verifier = make_verifier(audience=["billing", AUDIENCE])
    await verifier.verify(mint(aud=["other", AUDIENCE]))
    await verifier.verify(mint(aud="billing"))
    assert (await refused(verifier, mint(aud=["other", "more"]))).reason == "bad_audience"
    assert (await refused(verifier, mint(aud=[]))).reason == "bad_audience"
    assert (await refused(verifier, mint(aud=[AUDIENCE, 3]))).reason == "bad_audience"


async def test_leeway_edges(verifier: Verifier, mint: Minter, clock: FakeClock) -> None:
    now = int(clock.now)
    await verifier.verify(mint(exp=now - 59, iat=now - 900))
    assert (await refused(verifier, mint(exp=now - 60, iat=now - 900))).reason == "expired"
    await verifier.verify(mint(nbf=now + 60))
    assert (await refused(verifier, mint(nbf=now + 61))).reason == "not_yet_valid"
    await verifier.verify(mint(iat=now + 60))
    assert (await refused(verifier, mint(iat=now + 61))).reason == "issued_in_future"


async def test_zero_leeway(make_verifier: Callable[..., Verifier], mint: Minter, clock: FakeClock) -> None:
    verifier = make_verifier(leeway=0)
    now = int(clock.now)
    assert (await refused(verifier, mint(exp=now))).reason == "expired"
    assert (await refused(verifier, mint(iat=now + 1))).reason == "issued_in_future"
    await verifier.verify(mint(exp=now + 1, nbf=now, iat=now))


async def test_token_expires_as_time_passes(verifier: Verifier, mint: Minter, clock: FakeClock) -> None:
    token = mint()
    await verifier.verify(token)
    clock.advance(900 + 60)
    assert (await refused(verifier, token)).reason == "expired"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": ISSUER + "/"}, "bad_issuer"),
        ({"iss": "https://evil.test"}, "bad_issuer"),
        ({"iss": ["https://issuer.test"]}, "bad_issuer"),
        ({"iss": DELETE}, "missing_claim"),
        ({"aud": "someone-else"}, "bad_audience"),
        ({"aud": {"aud": AUDIENCE}}, "bad_audience"),
        ({"aud": DELETE}, "missing_claim"),
        ({"exp": DELETE}, "missing_claim"),
        ({"iat": DELETE}, "missing_claim"),
        ({"sub": DELETE}, "missing_claim"),
        ({"jti": DELETE}, "missing_claim"),
        ({"client_id": DELETE}, "missing_claim"),
        ({"exp": "9999999999"}, "malformed"),
        ({"exp": True}, "malformed"),
        ({"exp": None}, "malformed"),
        ({"iat": "0"}, "malformed"),
        ({"nbf": "0"}, "malformed"),
        ({"sub": 42}, "malformed"),
        ({"sub": ""}, "malformed"),
        ({"client_id": None}, "malformed"),
        ({"scope": ["orders:read"]}, "malformed"),
    ],
)
async def test_claim_rules(verifier: Verifier, mint: Minter, claims: dict[str, Any], reason: str) -> None:
    error = await refused(verifier, mint(**claims))
    assert error.code == "invalid_token"
    assert error.reason == reason


async def test_float_times_are_numbers(verifier: Verifier, mint: Minter, clock: FakeClock) -> None:
    await verifier.verify(mint(exp=clock.now + 10.5, iat=clock.now - 0.25, nbf=clock.now))


async def test_scopes(verifier: Verifier, mint: Minter) -> None:
    token = mint(scope="orders:read profile")
    await verifier.verify(token, scopes=["orders:read"])
    await verifier.verify(token, scopes="orders:read profile")
    error = await refused(verifier, token, scopes=["orders:read", "orders:write"])
    assert (error.code, error.reason, error.scope) == (
        "insufficient_scope",
        "insufficient_scope",
        "orders:read orders:write",
    )
    # "orders" is not a prefix match, and a missing scope claim grants nothing.
    assert (await refused(verifier, mint(scope="orders:readers"), scopes=["orders:read"])).code == (
        "insufficient_scope"
    )
    assert (await refused(verifier, mint(scope=DELETE), scopes=["orders:read"])).code == "insufficient_scope"
    await verifier.verify(mint(scope=DELETE))


def test_invalid_token_shape() -> None:
    error = InvalidToken("invalid_token", "expired")
    assert (error.code, error.reason) == ("invalid_token", "expired")
    assert str(error) == "invalid_token: expired"
    assert error.description == "The access token expired."
    assert isinstance(error, Exception)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"audience": ""},
        {"audience": []},
        {"audience": ["ok", 3]},
        {"leeway": -1},
        {"min_cache": -1},
        {"min_cache": 10, "max_cache": 5},
        {"stale_if_error": float("nan")},
        {"unknown_kid_cooldown": float("inf")},
        {"jwks_url": "ftp://issuer.test/jwks"},
    ],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    issuer = kwargs.pop("issuer", ISSUER)
    audience = kwargs.pop("audience", AUDIENCE)
    with pytest.raises(ValueError):
        Verifier(issuer, audience, **kwargs)


def test_default_jwks_url_and_accessors() -> None:
    verifier = Verifier("https://auth.example.com", ["a", "b"])
    assert verifier.jwks_url == "https://auth.example.com/.well-known/jwks.json"
    assert verifier.issuer == "https://auth.example.com"
    assert verifier.audiences == frozenset({"a", "b"})
