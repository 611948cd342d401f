"""GET /.well-known/jwks.json and the RFC 8414 metadata documents."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.support import ISSUER, AppHarness

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
JWKS = "/.well-known/jwks.json"


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3, written out: required members only, sorted, no whitespace, SHA-256."""
    required = {"RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def test_thumbprint_helper_matches_rfc7638_example() -> None:
    """The RFC's own §3.1 example, so the helper above is trustworthy."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n"
        "91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert rfc7638_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture(params=["RS256", "EdDSA"])
async def any_alg(request: pytest.FixtureRequest, harness_factory: Callable[..., Any]) -> AppHarness:
    return await harness_factory(signing_alg=request.param)  # type: ignore[no-any-return]


# --- JWKS -----------------------------------------------------------------------------------
async def test_jwks_keys_are_public_and_complete(any_alg: AppHarness) -> None:
    response = await any_alg.client.get(JWKS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    keys = response.json()["keys"]
    assert len(keys) == 2  # the signing key and the standby (AUTHSVC_KEY_STANDBY)
    for key in keys:
        assert {"kid", "kty", "alg", "use"} <= set(key)
        assert key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["alg"] == any_alg.settings.signing_alg
        if key["alg"] == "RS256":
            assert key["kty"] == "RSA"
            assert {"n", "e"} <= set(key)
        else:
            assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")


async def test_kid_is_the_rfc7638_thumbprint(any_alg: AppHarness) -> None:
    for key in (await any_alg.client.get(JWKS)).json()["keys"]:
        assert key["kid"] == rfc7638_thumbprint(key)


async def test_jwks_key_matches_the_private_key_on_disk(any_alg: AppHarness) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    for key in (await any_alg.client.get(JWKS)).json()["keys"]:
        pem = (any_alg.settings.keys_dir / f"{key['kid']}.pem").read_bytes()
        private = load_pem_private_key(pem, None)
        public = jwt.PyJWK(key).key
        if isinstance(private, rsa.RSAPrivateKey):
            assert private.public_key().public_numbers() == public.public_numbers()
        else:
            assert isinstance(private, ed25519.Ed25519PrivateKey)
            assert private.public_key().public_bytes_raw() == public.public_bytes_raw()


async def test_tokens_name_a_published_kid(any_alg: AppHarness) -> None:
    await any_alg.add_user()
    body = (await any_alg.login()).json()
    kids = {k["kid"] for k in (await any_alg.client.get(JWKS)).json()["keys"]}
    assert jwt.get_unverified_header(body["access_token"])["kid"] in kids
    assert jwt.get_unverified_header(body["refresh_token"])["kid"] in kids


async def test_default_cache_control(harness: AppHarness) -> None:
    response = await harness.client.get(JWKS)
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_cache_control_follows_jwks_max_age(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(jwks_max_age=120)
    response = await harness.client.get(JWKS)
    assert response.headers["cache-control"] == "public, max-age=120"


async def test_etag_is_stable_and_quoted(harness: AppHarness) -> None:
    first = await harness.client.get(JWKS)
    second = await harness.client.get(JWKS)
    etag = first.headers["etag"]
    assert etag == second.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert len(etag) > 2
    assert first.content == second.content


async def test_if_none_match_gives_304_with_the_same_headers(harness: AppHarness) -> None:
    first = await harness.client.get(JWKS)
    etag = first.headers["etag"]
    response = await harness.client.get(JWKS, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == first.headers["cache-control"]


@pytest.mark.parametrize("template", ["W/{etag}", '"nope", {etag}', '{etag}, "other"'])
async def test_if_none_match_lists_and_weak_tags(harness: AppHarness, template: str) -> None:
    etag = (await harness.client.get(JWKS)).headers["etag"]
    response = await harness.client.get(JWKS, headers={"If-None-Match": template.format(etag=etag)})
    assert response.status_code == 304


@pytest.mark.parametrize("value", ['"nope"', "", "garbage", 'W/"x"'])
async def test_if_none_match_other_tags_give_the_body(harness: AppHarness, value: str) -> None:
    response = await harness.client.get(JWKS, headers={"If-None-Match": value})
    assert response.status_code == 200
    assert response.json()["keys"]


async def test_jwks_is_the_same_across_instances(harness_factory: Callable[..., Any]) -> None:
    """Two apps on one key store publish the same set, byte for byte."""
    one: AppHarness = await harness_factory()
    two: AppHarness = await harness_factory()
    a, b = await one.client.get(JWKS), await two.client.get(JWKS)
    assert a.content == b.content
    assert a.headers["etag"] == b.headers["etag"]


# --- discovery ---------------------------------------------------------------------------------
async def test_both_metadata_documents_are_equal(harness: AppHarness) -> None:
    oauth = await harness.client.get("/.well-known/oauth-authorization-server")
    openid = await harness.client.get("/.well-known/openid-configuration")
    assert oauth.status_code == openid.status_code == 200
    assert oauth.headers["content-type"].startswith("application/json")
    assert oauth.json() == openid.json()


async def test_metadata_fields(harness: AppHarness) -> None:
    doc = (await harness.client.get("/.well-known/oauth-authorization-server")).json()
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == ISSUER + "/token"
    assert doc["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert doc["revocation_endpoint"] == ISSUER + "/revoke"
    assert doc["introspection_endpoint"] == ISSUER + "/introspect"
    assert sorted(doc["grant_types_supported"]) == [
        "authorization_code",
        "client_credentials",
        "password",
        "refresh_token",
    ]
    # Browser sign-in (CONTRACT.md): the document is OpenID Connect Discovery metadata too.
    assert doc["response_types_supported"] == ["code"]
    assert doc["authorization_endpoint"] == ISSUER + "/authorize"
    assert doc["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert doc["end_session_endpoint"] == ISSUER + "/logout"
    assert doc["pushed_authorization_request_endpoint"] == ISSUER + "/par"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "profile", "email", "offline_access"} <= set(doc["scopes_supported"])
    assert {"RS256", "EdDSA"} <= set(doc["id_token_signing_alg_values_supported"])
    assert {"sub", "auth_time", "nonce", "at_hash", "sid"} <= set(doc["claims_supported"])
    basic = {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert set(doc["token_endpoint_auth_methods_supported"]) == basic | {"none"}
    assert set(doc["revocation_endpoint_auth_methods_supported"]) == basic | {"none"}
    assert set(doc["introspection_endpoint_auth_methods_supported"]) == basic
    for endpoint in ("token", "revocation", "introspection"):
        algs = doc[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert algs
        assert "none" not in algs
        assert not [alg for alg in algs if alg.upper().startswith("HS")]


async def test_metadata_issuer_is_the_configured_one(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(issuer="https://auth.example.com:8443")
    doc = (await harness.client.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == "https://auth.example.com:8443"
    assert doc["token_endpoint"] == "https://auth.example.com:8443/token"
    assert doc["jwks_uri"] == "https://auth.example.com:8443/.well-known/jwks.json"


async def test_jwks_uri_serves_the_jwks(harness: AppHarness) -> None:
    doc = (await harness.client.get("/.well-known/oauth-authorization-server")).json()
    response = await harness.client.get(doc["jwks_uri"].removeprefix(ISSUER))
    assert response.status_code == 200
    assert response.json()["keys"]
