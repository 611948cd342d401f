"""private_key_jwt client authentication (RFC 7523 §2.2, §3).

``iss`` = ``sub`` = client_id; ``aud`` the issuer or the token endpoint URL,
alone; ``exp`` required and at most an hour (plus skew) ahead; ``jti`` never
accepted twice, on any instance (two live servers on one database: see
test_client_libraries.py); the algorithm comes from the client's
registered key (never HS* or none); a key outside the client's JWKS is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authsvc.jose import registry_for
from tests.support import ISSUER, AppHarness
from tests.test_client_auth import ASSERTION_TYPE, add_client, assert_invalid_client, basic, claims_of

Factory = Callable[..., Any]
Key = ECKey | OKPKey | RSAKey

TOKEN_ENDPOINT = ISSUER + "/token"


def public_jwk(key: Key, kid: str | None, alg: str | None = None, **extra: str) -> dict[str, Any]:
    jwk = key.as_dict(private=False)
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return {**jwk, **extra}


def jwks_of(*jwks: dict[str, Any]) -> str:
    return json.dumps({"keys": list(jwks)})


def sign(key: Key, alg: str, claims: dict[str, Any], *, kid: str | None = "k1", **header: Any) -> str:
    protected = {"alg": alg, **({"kid": kid} if kid is not None else {}), **header}
    return jws.serialize_compact(protected, json.dumps(claims), key, registry=registry_for(alg))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(alg: str, claims: dict[str, Any], secret: bytes, kid: str = "k1") -> str:
    """An HS256 or alg=none JWS made by hand (joserfc rightly refuses to make these)."""
    signing_input = (
        b64(json.dumps({"alg": alg, "kid": kid}).encode()) + "." + b64(json.dumps(claims).encode())
    )
    if alg == "none":
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def assertion_claims(now: float, client_id: str = "jwt-svc", **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


async def with_assertion(
    h: AppHarness, assertion: str, endpoint: str = "/token", **extra: str
) -> httpx.Response:
    form = {"grant_type": "client_credentials"} if endpoint == "/token" else {"token": "junk"}
    return await h.client.post(endpoint, data={**form, **assertion_form(assertion, **extra)})


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256")


async def add_jwt_client(h: AppHarness, key: Key, client_id: str = "jwt-svc", **jwk: Any) -> None:
    jwk.setdefault("kid", "k1")
    await add_client(h, client_id, jwks=jwks_of(public_jwk(key, **jwk)), scopes=("read",))


# --- accepted assertions ---------------------------------------------------------------------
async def test_issuer_or_token_endpoint_audience_at_every_endpoint(
    harness: AppHarness, ec_key: ECKey
) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    now = h.clock.now()
    for aud in (TOKEN_ENDPOINT, ISSUER, [ISSUER], [TOKEN_ENDPOINT]):
        for endpoint in ("/token", "/revoke", "/introspect"):
            response = await with_assertion(
                h, sign(ec_key, "ES256", assertion_claims(now, aud=aud)), endpoint
            )
            assert response.status_code == 200, (aud, endpoint, response.text)
    token = (await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now)))).json()["access_token"]
    assert claims_of(token)["sub"] == claims_of(token)["client_id"] == "jwt-svc"
    # The matching client_id form field is allowed; the typ of a client assertion too.
    assertion = sign(ec_key, "ES256", assertion_claims(now), typ="client-authentication+jwt")
    response = await with_assertion(h, assertion, client_id="jwt-svc")
    assert response.status_code == 200, response.text


async def test_alg_comes_from_the_registered_key(harness: AppHarness) -> None:
    h = harness
    ed = OKPKey.generate_key("Ed25519")
    rsa = RSAKey.generate_key(2048)
    await add_jwt_client(h, ed, "ed-client")  # alg from the kty: EdDSA
    await add_jwt_client(h, rsa, "ps-client", alg="PS256")
    now = h.clock.now()
    ok = await with_assertion(h, sign(ed, "EdDSA", assertion_claims(now, "ed-client")))
    assert ok.status_code == 200, ok.text
    ok = await with_assertion(h, sign(rsa, "PS256", assertion_claims(now, "ps-client")))
    assert ok.status_code == 200, ok.text
    # Same key, another alg than the registered one.
    assert_invalid_client(await with_assertion(h, sign(rsa, "RS256", assertion_claims(now, "ps-client"))))


async def test_hs256_and_none_are_refused(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    secret = await add_client(h, "secret-svc")
    now = h.clock.now()
    public_pem = ec_key.as_pem(private=False)
    for client_id, key_material in (
        ("jwt-svc", public_pem),  # the classic confusion: the public key as an HMAC secret
        ("jwt-svc", json.dumps(public_jwk(ec_key, "k1")).encode()),
        ("secret-svc", secret.encode()),  # a "secret" client signing with its secret
    ):
        claims = assertion_claims(now, client_id)
        assert_invalid_client(await with_assertion(h, forged("HS256", claims, key_material)))
        assert_invalid_client(await with_assertion(h, forged("none", claims, b"")))


async def test_keys_outside_the_clients_jwks_are_refused(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    stranger = ECKey.generate_key("P-256")
    now = h.clock.now()
    for kid in ("k1", "k2", None):
        assert_invalid_client(
            await with_assertion(h, sign(stranger, "ES256", assertion_claims(now), kid=kid))
        )
    # Without a kid, the client's only key is used.
    response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now), kid=None))
    assert response.status_code == 200, response.text
    # Two keys: the kid must name one of them.
    second = ECKey.generate_key("P-256")
    await add_client(
        h,
        "two-keys",
        jwks=jwks_of(public_jwk(ec_key, "a"), public_jwk(second, "b")),
    )
    claims = assertion_claims(now, "two-keys")
    assert (await with_assertion(h, sign(second, "ES256", claims, kid="b"))).status_code == 200
    assert_invalid_client(
        await with_assertion(h, sign(second, "ES256", assertion_claims(now, "two-keys"), kid="a"))
    )
    assert_invalid_client(
        await with_assertion(h, sign(second, "ES256", assertion_claims(now, "two-keys"), kid=None))
    )


async def test_unusable_keys_in_the_jwks_do_not_shift_the_others(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    other = ECKey.generate_key("P-256")
    jwks = jwks_of(
        {"kty": "FUTURE", "kid": "k1", "alg": "ES256", "x": "abc"},  # a kty we do not know
        public_jwk(other, "enc-key", use="enc"),
        {**public_jwk(other, "odd-alg"), "alg": ["ES256"]},  # not even a string
        public_jwk(other, "rsa-alg", "RS256"),  # an alg this key type cannot verify
        public_jwk(other, "hmac-alg", "HS256"),
        public_jwk(ec_key, "k2"),
    )
    await add_client(h, "mixed", jwks=jwks)
    now = h.clock.now()
    ok = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, "mixed"), kid="k2"))
    assert ok.status_code == 200, ok.text
    assert_invalid_client(
        await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, "mixed"), kid="k1"))
    )
    for kid in ("enc-key", "odd-alg", "rsa-alg", "hmac-alg"):
        response = await with_assertion(h, sign(other, "ES256", assertion_claims(now, "mixed"), kid=kid))
        assert_invalid_client(response)


# --- refused claims ----------------------------------------------------------------------------
async def test_other_audiences_are_refused(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    now = h.clock.now()
    for aud in (
        ISSUER + "/",
        ISSUER + "/introspect",
        ISSUER + "/revoke",
        "https://other.example",
        "http://127.0.0.1:9001/token",
        [ISSUER, "https://other.example"],
        [TOKEN_ENDPOINT, TOKEN_ENDPOINT],
        [],
        [{"nested": ISSUER}],  # not hashable: must not be a server error
        {"aud": ISSUER},
        5,
        None,  # no aud at all
    ):
        response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, aud=aud)))
        assert_invalid_client(response)


async def test_time_claims(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    now = int(h.clock.now())
    skew = h.settings.clock_skew
    for overrides in (
        {"exp": None},
        {"exp": str(now + 60)},
        {"exp": now + 3600 + skew + 1},
        {"exp": now - skew - 1},
        {"nbf": now + skew + 10},
        {"iat": now + skew + 10},
    ):
        response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, **overrides)))
        assert_invalid_client(response)
    response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, exp=now + 3600 + skew)))
    assert response.status_code == 200, response.text


async def test_issuer_subject_and_client_id_must_agree(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    await add_jwt_client(h, ec_key, "twin", alg="ES256")  # same key registered for another client
    now = h.clock.now()
    for overrides in ({"sub": "twin"}, {"iss": "twin"}, {"sub": None}, {"jti": None}, {"jti": ""}):
        response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, **overrides)))
        assert_invalid_client(response)
    response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now)), client_id="twin")
    assert_invalid_client(response)
    for typ in ("at+jwt", "rt+jwt"):
        response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now), typ=typ))
        assert_invalid_client(response)


async def test_assertion_type_must_be_jwt_bearer(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    now = h.clock.now()
    for assertion_type in ("urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "jwt"):
        assertion = sign(ec_key, "ES256", assertion_claims(now))
        response = await with_assertion(h, assertion, client_assertion_type=assertion_type)
        assert_invalid_client(response)
    response = await h.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion": sign(ec_key, "ES256", assertion_claims(now)),
        },
    )
    assert_invalid_client(response)
    for junk in ("a.b.c", "not a jwt", "x" * 9000):
        assert_invalid_client(await with_assertion(h, junk))


async def test_methods_do_not_mix(harness: AppHarness, ec_key: ECKey) -> None:
    h = harness
    await add_jwt_client(h, ec_key, alg="ES256")
    secret = await add_client(h, "secret-svc")
    await add_client(h, "spa", public=True, grants=("refresh_token",))
    now = h.clock.now()
    # A JWKS client has no secret; a secret client and a public client have no keys.
    assert_invalid_client(
        await h.client.post("/token", data={"grant_type": "client_credentials"}, headers=basic("jwt-svc", ""))
    )
    assert_invalid_client(
        await h.client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic("jwt-svc", secret)
        )
    )
    for client_id in ("secret-svc", "spa", "cli", "nobody"):
        response = await with_assertion(h, sign(ec_key, "ES256", assertion_claims(now, client_id)))
        assert_invalid_client(response)


# --- replay ------------------------------------------------------------------------------------
async def test_replayed_assertion_is_refused(db_harness: AppHarness, ec_key: ECKey) -> None:
    h = db_harness
    await add_jwt_client(h, ec_key, alg="ES256")
    now = h.clock.now()
    assertion = sign(ec_key, "ES256", assertion_claims(now, exp=int(now) + 30))
    assert (await with_assertion(h, assertion)).status_code == 200
    assert_invalid_client(await with_assertion(h, assertion))
    assert_invalid_client(await with_assertion(h, assertion, "/introspect"))  # at any endpoint
    # Past exp but inside the clock skew, the assertion would still verify: still a replay.
    h.clock.advance(30 + h.settings.clock_skew - 1)
    assert_invalid_client(await with_assertion(h, assertion))
    # A new jti is a new assertion; a very long one is fine too.
    long_jti = assertion_claims(h.clock.now(), jti="j" * 1000)
    assertion = sign(ec_key, "ES256", long_jti)
    assert (await with_assertion(h, assertion)).status_code == 200
    assert_invalid_client(await with_assertion(h, assertion))
    # The same jti from another client is that client's own business.
    await add_jwt_client(h, ec_key, "twin", alg="ES256")
    assertion = sign(ec_key, "ES256", assertion_claims(h.clock.now(), "twin", jti="j" * 1000))
    assert (await with_assertion(h, assertion)).status_code == 200


async def test_replay_is_refused_by_another_app_on_the_same_database(
    db_harness_factory: Factory, ec_key: ECKey
) -> None:
    first = await db_harness_factory()
    second = await db_harness_factory()
    await add_jwt_client(first, ec_key, alg="ES256")
    assertion = sign(ec_key, "ES256", assertion_claims(first.clock.now()))
    assert (await with_assertion(first, assertion)).status_code == 200
    assert_invalid_client(await with_assertion(second, assertion))
