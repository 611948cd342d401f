"""POST /introspect (RFC 7662) on the ASGI app."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authsvc.store.records import Client
from tests.support import ISSUER, AppHarness, claims_of

Factory = Callable[..., Any]
INACTIVE = {"active": False}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def add_confidential(harness: AppHarness, client_id: str = "rs") -> dict[str, str]:
    secret = await harness.add_service_client(client_id, audiences=("authsvc",))
    return basic(client_id, secret)


async def introspect(harness: AppHarness, auth: dict[str, str], token: str, **extra: str) -> httpx.Response:
    return await harness.client.post("/introspect", data={"token": token, **extra}, headers=auth)


async def state(harness: AppHarness, auth: dict[str, str], token: str, **extra: str) -> dict[str, Any]:
    response = await introspect(harness, auth, token, **extra)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    if not body["active"]:
        assert body == INACTIVE  # nothing else is said about an inactive token
    return body


async def setup(harness: AppHarness) -> tuple[dict[str, str], dict[str, Any]]:
    auth = await add_confidential(harness)
    await harness.add_user()
    response = await harness.login()
    assert response.status_code == 200
    return auth, response.json()


# --- who may ask --------------------------------------------------------------------
async def test_no_client_authentication_is_invalid_client(harness: AppHarness) -> None:
    _auth, body = await setup(harness)
    for headers, extra in [({}, {}), ({}, {"client_id": "cli"}), ({}, {"client_id": "rs"})]:
        response = await introspect(harness, headers, body["access_token"], **extra)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"] == 'Basic realm="authsvc"'
        assert "active" not in response.json()


async def test_public_client_is_invalid_client(harness_factory: Factory) -> None:
    harness = await harness_factory()
    await harness.services.clients.store.add(
        Client(
            id="spa",
            public=True,
            grant_types=frozenset({"password", "refresh_token"}),
            scopes=None,
            audiences=("authsvc",),
        ),
        harness.clock.now(),
    )
    _auth, body = await setup(harness)
    response = await introspect(harness, {}, body["access_token"], client_id="spa")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    response = await introspect(harness, basic("cli", ""), body["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_wrong_secret_is_invalid_client(harness: AppHarness) -> None:
    _auth, body = await setup(harness)
    response = await introspect(harness, basic("rs", "not-the-secret"), body["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_client_secret_post_works(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    secret = base64.b64decode(auth["Authorization"].split()[1]).decode().split(":", 1)[1]
    response = await introspect(harness, {}, body["access_token"], client_id="rs", client_secret=secret)
    assert response.status_code == 200
    assert response.json()["active"] is True


async def test_missing_token_is_invalid_request(harness: AppHarness) -> None:
    auth, _body = await setup(harness)
    response = await harness.client.post("/introspect", data={}, headers=auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- active answers -----------------------------------------------------------------
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_active_access_token(harness: AppHarness, hint: str | None) -> None:
    auth, body = await setup(harness)
    claims = claims_of(body["access_token"])
    answer = await state(harness, auth, body["access_token"], **({"token_type_hint": hint} if hint else {}))
    expected = {
        "active": True,
        "scope": "read write",
        "client_id": "cli",
        "username": "alice",
        "token_type": "Bearer",
        "token_use": "access_token",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "sub": claims["sub"],
        "aud": "authsvc",
        "iss": ISSUER,
        "jti": claims["jti"],
    }
    assert {k: answer.get(k) for k in expected} == expected
    assert answer["sub"] != "alice"  # the opaque id, the name is `username`


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
async def test_active_refresh_token(harness: AppHarness, hint: str | None) -> None:
    auth, body = await setup(harness)
    claims = claims_of(body["refresh_token"])
    answer = await state(harness, auth, body["refresh_token"], **({"token_type_hint": hint} if hint else {}))
    expected = {
        "active": True,
        "scope": "read write",
        "client_id": "cli",
        "username": "alice",
        "token_use": "refresh_token",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "sub": claims["sub"],
        "iss": ISSUER,
        "jti": claims["jti"],
    }
    assert {k: answer.get(k) for k in expected} == expected
    assert "aud" not in answer
    assert answer.get("token_type") != "Bearer"
    # asking did not spend it
    assert (await harness.refresh(body["refresh_token"])).status_code == 200


async def test_narrowed_access_token_reports_its_own_scope(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    narrowed = (await harness.refresh(body["refresh_token"], scope="read")).json()
    assert (await state(harness, auth, narrowed["access_token"]))["scope"] == "read"
    assert (await state(harness, auth, narrowed["refresh_token"]))["scope"] == "read write"


async def test_client_credentials_token(harness: AppHarness) -> None:
    secret = await harness.add_service_client("svc", scopes=frozenset({"orders:read"}), audiences=("orders",))
    auth, _body = await setup(harness)
    issued = await harness.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("svc", secret)
    )
    assert issued.status_code == 200
    answer = await state(harness, auth, issued.json()["access_token"])
    assert answer["active"] is True
    assert answer["sub"] == answer["client_id"] == "svc"
    assert answer["aud"] == "orders"
    assert answer["scope"] == "orders:read"
    assert answer["token_type"] == "Bearer"
    assert answer["token_use"] == "access_token"
    assert "username" not in answer


# --- inactive answers ---------------------------------------------------------------
async def test_revoked_access_token_is_inactive(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory()
    auth, body = await setup(harness)
    assert (await harness.client.post("/revoke", data={"token": body["access_token"]})).status_code == 200
    assert await state(harness, auth, body["access_token"]) == INACTIVE
    assert (await state(harness, auth, body["refresh_token"]))["active"] is True


async def test_revoked_session_makes_both_inactive(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    assert (await harness.client.post("/revoke", data={"token": body["refresh_token"]})).status_code == 200
    assert await state(harness, auth, body["access_token"]) == INACTIVE
    assert await state(harness, auth, body["refresh_token"]) == INACTIVE
    assert (await harness.me(body["access_token"])).status_code == 401


async def test_reuse_makes_the_family_inactive(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory()
    auth, first = await setup(harness)
    second = (await harness.refresh(first["refresh_token"])).json()
    assert await state(harness, auth, first["refresh_token"]) == INACTIVE  # spent
    assert (await state(harness, auth, second["refresh_token"]))["active"] is True
    assert (await harness.refresh(first["refresh_token"])).status_code == 400
    for token in (second["access_token"], second["refresh_token"], first["access_token"]):
        assert await state(harness, auth, token) == INACTIVE


async def test_spent_refresh_token_inside_grace_is_inactive(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=30)
    auth, first = await setup(harness)
    assert (await harness.refresh(first["refresh_token"])).status_code == 200
    assert await state(harness, auth, first["refresh_token"]) == INACTIVE


async def test_expired_tokens_are_inactive(harness_factory: Factory) -> None:
    harness = await harness_factory(access_token_ttl=60, refresh_token_ttl=120, clock_skew=30)
    auth, body = await setup(harness)
    harness.clock.advance(59)
    assert (await state(harness, auth, body["access_token"]))["active"] is True
    harness.clock.advance(1)  # at exp: expired, whatever leeway offline verifiers allow
    assert await state(harness, auth, body["access_token"]) == INACTIVE
    assert (await state(harness, auth, body["refresh_token"]))["active"] is True
    harness.clock.advance(60)
    assert await state(harness, auth, body["refresh_token"]) == INACTIVE


async def test_disabled_user_tokens_are_inactive(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    await harness.services.users.set_disabled("alice", True, harness.clock.now())
    assert await state(harness, auth, body["access_token"]) == INACTIVE
    assert await state(harness, auth, body["refresh_token"]) == INACTIVE


async def test_foreign_tokens_are_inactive(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (body["access_token"], body["refresh_token"]):
        header = jwt.get_unverified_header(token)
        for kid in (header["kid"], "someone-elses-kid"):
            forged = jwt.encode(
                claims_of(token), stranger, algorithm="RS256", headers={"kid": kid, "typ": header["typ"]}
            )
            assert await state(harness, auth, forged) == INACTIVE


async def test_tampered_token_is_inactive(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    head, payload, signature = body["access_token"].split(".")
    claims = claims_of(body["access_token"])
    claims["scope"] = "read write admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert await state(harness, auth, f"{head}.{forged_payload}.{signature}") == INACTIVE
    assert await state(harness, auth, f"{head}.{payload}.{signature[:-4]}AAAA") == INACTIVE


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.", "é" * 10])
async def test_garbage_is_inactive(harness: AppHarness, token: str) -> None:
    auth, _body = await setup(harness)
    assert await state(harness, auth, token) == INACTIVE
    assert await state(harness, auth, token, token_type_hint="refresh_token") == INACTIVE


async def test_access_token_with_sid_refused_after_session_revocation(harness: AppHarness) -> None:
    auth, body = await setup(harness)
    sid = claims_of(body["access_token"])["sid"]
    assert sid == claims_of(body["refresh_token"])["sid"]
    assert await harness.services.session_store.revoke(sid, harness.clock.now(), "logout")
    assert (await harness.me(body["access_token"])).status_code == 401
    assert await state(harness, auth, body["access_token"]) == INACTIVE


async def test_client_without_audience_gets_the_default_audience(harness: AppHarness) -> None:
    secret = await harness.add_service_client("bare", scopes=frozenset(), audiences=())
    auth, _body = await setup(harness)
    issued = await harness.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("bare", secret)
    )
    assert issued.status_code == 200
    assert claims_of(issued.json()["access_token"])["aud"] == "authsvc"
    assert (await state(harness, auth, issued.json()["access_token"]))["aud"] == "authsvc"
