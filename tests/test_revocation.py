"""POST /revoke (RFC 7009) on the ASGI app."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.store.records import Client
from tests.support import AppHarness, assert_error, claims_of

Factory = Callable[..., Any]
INACTIVE = {"active": False}


def assert_revoke_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def add_confidential(harness: AppHarness, client_id: str = "rs", **fields: Any) -> str:
    secret = generate_secret()
    values: dict[str, Any] = {
        "public": False,
        "grant_types": frozenset({"client_credentials"}),
        "scopes": frozenset({"read"}),
        "audiences": ("authsvc",),
        "secret_hash": hash_generated(secret),
        **fields,
    }
    await harness.services.clients.store.add(Client(id=client_id, **values), harness.clock.now())
    return secret


async def introspect(harness: AppHarness, token: str, auth: dict[str, str]) -> dict[str, Any]:
    response = await harness.client.post("/introspect", data={"token": token}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def revoke(harness: AppHarness, token: str, **extra: str) -> httpx.Response:
    return await harness.client.post("/revoke", data={"token": token, **extra})


async def setup(harness: AppHarness) -> dict[str, Any]:
    await harness.add_user()
    response = await harness.login()
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


# --- refresh tokens -----------------------------------------------------------------
@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "something_else"])
async def test_revoking_a_refresh_token_ends_its_family(
    db_harness_factory: Factory, hint: str | None
) -> None:
    harness = await db_harness_factory()
    first = await setup(harness)
    other = (await harness.login()).json()
    second = (await harness.refresh(first["refresh_token"])).json()
    assert_revoke_ok(
        await revoke(harness, second["refresh_token"], **({"token_type_hint": hint} if hint else {}))
    )
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(second["access_token"])).status_code == 401
    assert (await harness.me(first["access_token"])).status_code == 401
    # another session of the same user lives on
    assert (await harness.me(other["access_token"])).status_code == 200
    assert (await harness.refresh(other["refresh_token"])).status_code == 200


async def test_revoking_a_spent_refresh_token_ends_its_family(harness: AppHarness) -> None:
    first = await setup(harness)
    second = (await harness.refresh(first["refresh_token"])).json()
    assert_revoke_ok(await revoke(harness, first["refresh_token"]))
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")


async def test_revoking_twice_is_fine(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory()
    body = await setup(harness)
    assert_revoke_ok(await revoke(harness, body["refresh_token"]))
    assert_revoke_ok(await revoke(harness, body["refresh_token"]))
    assert_revoke_ok(await revoke(harness, body["access_token"]))
    assert_revoke_ok(await revoke(harness, body["access_token"]))


async def test_revoked_family_grace_replay_is_refused(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=30)
    first = await setup(harness)
    second = (await harness.refresh(first["refresh_token"])).json()
    assert_revoke_ok(await revoke(harness, first["refresh_token"], token_type_hint="refresh_token"))
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")


# --- access tokens ------------------------------------------------------------------
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_revoking_an_access_token_remembers_its_jti(harness: AppHarness, hint: str | None) -> None:
    secret = await add_confidential(harness)
    body = await setup(harness)
    assert (await harness.me(body["access_token"])).status_code == 200
    assert_revoke_ok(
        await revoke(harness, body["access_token"], **({"token_type_hint": hint} if hint else {}))
    )
    me = await harness.me(body["access_token"])
    assert me.status_code == 401
    assert 'error="invalid_token"' in me.headers["www-authenticate"]
    assert await introspect(harness, body["access_token"], basic("rs", secret)) == INACTIVE
    # the session itself is not ended: the refresh token still works
    fresh = await harness.refresh(body["refresh_token"])
    assert fresh.status_code == 200
    assert (await harness.me(fresh.json()["access_token"])).status_code == 200


async def test_revoked_access_token_stays_refused_until_exp_and_skew(db_harness_factory: Factory) -> None:
    """Pruning must not bring a revoked token back while /users/me would still accept its exp."""
    harness = await db_harness_factory(access_token_ttl=100, clock_skew=60, refresh_token_ttl=1000)
    body = await setup(harness)
    assert_revoke_ok(await revoke(harness, body["access_token"]))
    for step in (50, 55, 30):  # +50, +105 (past exp, inside the skew), +135
        harness.clock.advance(step)
        await harness.services.session_store.prune(harness.clock.now())
        assert (await harness.me(body["access_token"])).status_code == 401
    assert (await harness.services.session_store.prune(harness.clock.now()))["revoked_access_tokens"] == 0
    harness.clock.advance(25)  # +160 = exp + skew: the token is dead on its own, the row can go
    assert (await harness.services.session_store.prune(harness.clock.now()))["revoked_access_tokens"] == 1
    assert (await harness.me(body["access_token"])).status_code == 401


async def test_revoking_a_client_credentials_token(harness: AppHarness) -> None:
    secret = await add_confidential(harness)
    issued = await harness.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("rs", secret)
    )
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert (await introspect(harness, token, basic("rs", secret)))["active"] is True
    response = await harness.client.post("/revoke", data={"token": token}, headers=basic("rs", secret))
    assert_revoke_ok(response)
    assert await introspect(harness, token, basic("rs", secret)) == INACTIVE


# --- what is not ours or not the caller's -------------------------------------------
@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.",
        "x" * 5000,
    ],
)
async def test_unknown_or_garbage_tokens_get_200(harness: AppHarness, token: str) -> None:
    assert_revoke_ok(await revoke(harness, token))
    assert_revoke_ok(await revoke(harness, token, token_type_hint="refresh_token"))


async def test_expired_tokens_get_200(harness_factory: Factory) -> None:
    harness = await harness_factory(access_token_ttl=10, refresh_token_ttl=20, clock_skew=0)
    body = await setup(harness)
    harness.clock.advance(21)
    assert_revoke_ok(await revoke(harness, body["refresh_token"]))
    assert_revoke_ok(await revoke(harness, body["access_token"]))


async def test_foreign_signed_token_gets_200_and_revokes_nothing(harness: AppHarness) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    body = await setup(harness)
    header = jwt.get_unverified_header(body["refresh_token"])
    forged = jwt.encode(
        claims_of(body["refresh_token"]),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": header["kid"], "typ": "rt+jwt"},
    )
    assert_revoke_ok(await revoke(harness, forged))
    assert (await harness.refresh(body["refresh_token"])).status_code == 200


async def test_token_of_another_client_is_invalid_grant(harness: AppHarness) -> None:
    secret = await add_confidential(harness)
    body = await setup(harness)
    for token in (body["refresh_token"], body["access_token"]):
        response = await harness.client.post("/revoke", data={"token": token}, headers=basic("rs", secret))
        assert_error(response, 400, "invalid_grant")
    assert (await harness.me(body["access_token"])).status_code == 200
    assert (await harness.refresh(body["refresh_token"])).status_code == 200
    # and the other way round: the default client may not revoke rs's token
    issued = await harness.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("rs", secret)
    )
    assert_error(await revoke(harness, issued.json()["access_token"]), 400, "invalid_grant")


async def test_public_client_by_id(harness: AppHarness) -> None:
    body = await setup(harness)
    assert_revoke_ok(await revoke(harness, body["refresh_token"], client_id="cli"))
    assert_error(await harness.refresh(body["refresh_token"]), 400, "invalid_grant")


async def test_missing_token_is_invalid_request(harness: AppHarness) -> None:
    assert_error(await harness.client.post("/revoke", data={}), 400, "invalid_request")
    assert_error(await harness.client.post("/revoke", data={"token": ""}), 400, "invalid_request")
    assert_error(
        await harness.client.post("/revoke", data={"token_type_hint": "access_token"}), 400, "invalid_request"
    )


async def test_bad_client_credentials_are_invalid_client(harness: AppHarness) -> None:
    await add_confidential(harness)
    body = await setup(harness)
    response = await harness.client.post(
        "/revoke", data={"token": body["refresh_token"]}, headers=basic("rs", "nope")
    )
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    response = await revoke(harness, body["refresh_token"], client_id="nobody")
    assert_error(response, 401, "invalid_client")
    assert (await harness.refresh(body["refresh_token"])).status_code == 200


async def test_token_in_the_query_string_is_not_read(harness: AppHarness) -> None:
    body = await setup(harness)
    response = await harness.client.post("/revoke", params={"token": body["refresh_token"]}, data={})
    assert_error(response, 400, "invalid_request")
    assert (await harness.refresh(body["refresh_token"])).status_code == 200
