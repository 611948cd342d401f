"""The password grant (RFC 6749 §4.3) through POST /token.

Tokens are checked with PyJWT against the service's own JWKS, not with the
code that made them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from authsvc.clock import FrozenClock
from tests.support import ISSUER, AppHarness, assert_error, claims_of

TOKEN_FIELDS = {"access_token", "token_type", "expires_in", "scope", "refresh_token"}


@pytest.fixture
def clock() -> FrozenClock:
    """Near the real time, so PyJWT's own exp/iat checks apply unchanged."""
    return FrozenClock(float(int(time.time())))


async def _jwks_key(harness: AppHarness, token: str) -> jwt.PyJWK:
    kid = jwt.get_unverified_header(token)["kid"]
    keys = (await harness.client.get("/.well-known/jwks.json")).json()["keys"]
    (match,) = [k for k in keys if k["kid"] == kid]
    return jwt.PyJWK(match)


async def verified_claims(harness: AppHarness, token: str) -> dict[str, Any]:
    alg = jwt.get_unverified_header(token)["alg"]
    key = await _jwks_key(harness, token)
    return jwt.decode(token, key, algorithms=[alg], audience="authsvc", issuer=ISSUER)  # type: ignore[no-any-return]


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


# --- success ------------------------------------------------------------------------
async def test_success_body_and_headers(harness: AppHarness) -> None:
    await harness.add_user()
    response = await harness.login()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert_no_store(response)
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["expires_in"], int)
    assert body["scope"] == "read write"
    assert body["access_token"] != body["refresh_token"]


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
async def test_access_token_header_and_claims(
    harness_factory: Callable[..., Any], clock: FrozenClock, alg: str
) -> None:
    harness: AppHarness = await harness_factory(signing_alg=alg)
    user = await harness.add_user()
    body = (await harness.login()).json()
    token = body["access_token"]

    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header["typ"] == "at+jwt"
    jwks_kids = {k["kid"] for k in (await harness.client.get("/.well-known/jwks.json")).json()["keys"]}
    assert header["kid"] in jwks_kids

    claims = await verified_claims(harness, token)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user.id
    assert claims["sub"] != "alice"
    assert claims["aud"] == "authsvc"
    assert claims["iat"] == int(clock.now())
    assert claims["exp"] == claims["iat"] + 900
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert claims["client_id"] == "cli"
    assert claims["scope"] == "read write"
    assert isinstance(claims["sid"], str)
    assert claims["sid"]
    assert "username" not in claims
    assert "password" not in str(claims)


async def test_every_login_is_a_new_session_and_jti(harness: AppHarness) -> None:
    await harness.add_user()
    first = await verified_claims(harness, (await harness.login()).json()["access_token"])
    second = await verified_claims(harness, (await harness.login()).json()["access_token"])
    assert first["jti"] != second["jti"]
    assert first["sid"] != second["sid"]
    assert first["sub"] == second["sub"]


async def test_sub_is_stable_and_opaque_per_user(harness: AppHarness) -> None:
    alice = await harness.add_user("alice")
    bob = await harness.add_user("bob", "other pw")
    a = await verified_claims(harness, (await harness.login("alice")).json()["access_token"])
    b = await verified_claims(harness, (await harness.login("bob", "other pw")).json()["access_token"])
    assert (a["sub"], b["sub"]) == (alice.id, bob.id)
    assert a["sub"] != b["sub"]
    assert "alice" not in a["sub"]


async def test_explicit_default_client_id_works(harness: AppHarness) -> None:
    await harness.add_user()
    response = await harness.login(client_id="cli")
    assert response.status_code == 200
    claims = await verified_claims(harness, response.json()["access_token"])
    assert claims["client_id"] == "cli"


async def test_form_content_type_with_charset_works(harness: AppHarness) -> None:
    await harness.add_user()
    response = await harness.client.post(
        "/token",
        content=b"grant_type=password&username=alice&password=correct+horse",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    assert response.status_code == 200


async def test_password_with_reserved_characters(harness: AppHarness) -> None:
    password = "p&ss=w0rd+% ü"
    await harness.add_user(password=password)
    assert (await harness.login(password=password)).status_code == 200
    assert (await harness.login(password="p")).status_code == 400


# --- failures -----------------------------------------------------------------------
async def test_bad_credentials_are_indistinguishable(harness: AppHarness) -> None:
    await harness.add_user()
    await harness.add_user("carol", "carol pw", disabled=True)
    wrong_password = await harness.login("alice", "wrong")
    unknown_user = await harness.login("nobody", "correct horse")
    disabled_user = await harness.login("carol", "carol pw")
    for response in (wrong_password, unknown_user, disabled_user):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        assert_no_store(response)
        assert "www-authenticate" not in response.headers
    assert wrong_password.content == unknown_user.content == disabled_user.content


async def test_username_is_compared_after_precis_mapping(harness: AppHarness) -> None:
    """RFC 8265 UsernameCaseMapped: case and width variants name the same account."""
    user = await harness.add_user()
    for typed in ("Alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45"):  # the last is fullwidth
        response = await harness.login(typed)
        assert response.status_code == 200, typed
        assert claims_of(response.json()["access_token"])["sub"] == user.id
    # a Cyrillic look-alike is another (unknown) name
    assert_error(await harness.login("\u0430lice"), 400, "invalid_grant")


async def test_error_never_echoes_input(harness: AppHarness) -> None:
    await harness.add_user()
    response = await harness.login("alice", "s3cr3t-marker-XYZ")
    assert b"s3cr3t-marker-XYZ" not in response.content
    response = await harness.login("user-marker-XYZ", "pw")
    assert b"user-marker-XYZ" not in response.content


# --- scopes ---------------------------------------------------------------------------
async def test_omitted_scope_is_every_user_scope(harness: AppHarness) -> None:
    await harness.add_user(scopes="read write admin")
    body = (await harness.login()).json()
    assert body["scope"].split() == ["admin", "read", "write"]
    claims = await verified_claims(harness, body["access_token"])
    assert set(claims["scope"].split()) == {"read", "write", "admin"}


@pytest.mark.parametrize(("asked", "granted"), [("read", "read"), ("write read", "read write")])
async def test_scope_subset(harness: AppHarness, asked: str, granted: str) -> None:
    await harness.add_user()
    body = (await harness.login(scope=asked)).json()
    assert body["scope"] == granted
    assert (await verified_claims(harness, body["access_token"]))["scope"] == granted


@pytest.mark.parametrize("asked", ["admin", "read admin", "READ"])
async def test_scope_outside_the_users_is_invalid_scope(harness: AppHarness, asked: str) -> None:
    await harness.add_user()
    response = await harness.login(scope=asked)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert_no_store(response)


async def test_scope_is_not_checked_before_the_password(harness: AppHarness) -> None:
    """A wrong password with an unknown scope must not reveal the user's scopes."""
    await harness.add_user()
    response = await harness.login("alice", "wrong", scope="admin")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# --- clients ------------------------------------------------------------------------------
@pytest.mark.parametrize("client_id", ["nope", "CLI", "cli "])
async def test_unknown_client_is_invalid_client(harness: AppHarness, client_id: str) -> None:
    await harness.add_user()
    response = await harness.login(client_id=client_id)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="authsvc"'


async def test_other_default_client_id(harness_factory: Callable[..., Any]) -> None:
    harness: AppHarness = await harness_factory(default_client_id="web", default_audience="api")
    await harness.add_user()
    assert (await harness.login(client_id="cli")).status_code == 401
    body = (await harness.login()).json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["client_id"], claims["aud"]) == ("web", "api")
    assert (await harness.me(body["access_token"])).status_code == 200


# --- re-hash on login -----------------------------------------------------------------------
async def test_hash_is_remade_when_argon2_parameters_change(harness_factory: Callable[..., Any]) -> None:
    old: AppHarness = await harness_factory()
    await old.add_user()
    old_hash = (await old.services.users.by_username("alice")).password_hash
    assert (await old.login()).status_code == 200
    assert (await old.services.users.by_username("alice")).password_hash == old_hash  # same params

    new: AppHarness = await harness_factory(argon2_memory_kib=128, argon2_time_cost=2)
    assert (await new.login()).status_code == 200
    new_hash = (await new.services.users.by_username("alice")).password_hash
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$v=19$m=128,t=2,p=1$")
    # the new hash still checks the same password, and a wrong one still fails
    assert (await new.login()).status_code == 200
    assert (await new.services.users.by_username("alice")).password_hash == new_hash
    assert (await new.login(password="wrong")).status_code == 400


async def test_failed_login_does_not_rehash(harness_factory: Callable[..., Any]) -> None:
    old: AppHarness = await harness_factory()
    await old.add_user()
    old_hash = (await old.services.users.by_username("alice")).password_hash
    new: AppHarness = await harness_factory(argon2_memory_kib=128)
    assert (await new.login(password="wrong")).status_code == 400
    assert (await new.services.users.by_username("alice")).password_hash == old_hash
