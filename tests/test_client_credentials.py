"""The client_credentials grant (RFC 6749 §4.4): an access token for the client itself.

Access token only, ``sub`` = client id and no ``sid``; scopes limited to the
client's; ``aud`` = the client's audiences (else AUTHSVC_DEFAULT_AUDIENCE);
``expires_in`` from the per-client lifetime capped by the global one; refused
to public clients and to clients without the grant; useless at /users/me.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import ISSUER, AppHarness
from tests.test_client_auth import (
    add_client,
    assert_invalid_client,
    basic,
    claims_of,
    client_token,
    header_of,
)

Factory = Callable[..., Any]


async def test_access_token_only_for_the_client_itself(db_harness: AppHarness) -> None:
    h = db_harness
    secret = await add_client(h, "svc", scopes=("read", "write"), audiences=("api",))
    response = await client_token(h, basic("svc", secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh_token
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == h.settings.access_token_ttl
    assert body["scope"] == "read write"
    assert header_of(body["access_token"])["typ"] == "at+jwt"
    claims = claims_of(body["access_token"])
    assert "sid" not in claims
    assert claims["sub"] == claims["client_id"] == "svc"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "api"
    assert claims["scope"] == "read write"
    assert claims["exp"] - claims["iat"] == h.settings.access_token_ttl
    # No session was started for it.
    introspected = await h.client.post(
        "/introspect", data={"token": body["access_token"]}, headers=basic("svc", secret)
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["token_use"] == "access_token"
    assert "username" not in introspected.json()


async def test_scopes_are_the_clients(harness: AppHarness) -> None:
    h = harness
    secret = await add_client(h, "svc", scopes=("read", "write", "admin"))
    auth = basic("svc", secret)
    assert (await client_token(h, auth)).json()["scope"] == "admin read write"  # omitted: all of them
    assert (await client_token(h, auth, scope="read")).json()["scope"] == "read"
    response = await client_token(h, auth, scope="write read")
    assert claims_of(response.json()["access_token"])["scope"] == "read write"
    for scope in ("delete", "read delete", "read  write", 'a"b'):
        response = await client_token(h, auth, scope=scope)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_scope"), scope

    bare = await add_client(h, "bare", scopes=())
    response = await client_token(h, basic("bare", bare))
    assert response.status_code == 200
    assert response.json()["scope"] == ""
    response = await client_token(h, basic("bare", bare), scope="read")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


async def test_audience_is_the_clients_else_the_default(harness_factory: Factory) -> None:
    h = await harness_factory(default_audience="internal")
    one = await add_client(h, "one", audiences=("api",))
    two = await add_client(h, "two", audiences=("api-1", "api-2"))
    none = await add_client(h, "none")
    for client_id, secret, expected in (
        ("one", one, "api"),
        ("two", two, ["api-1", "api-2"]),
        ("none", none, "internal"),
    ):
        response = await client_token(h, basic(client_id, secret))
        assert claims_of(response.json()["access_token"])["aud"] == expected


@pytest.mark.parametrize(
    ("global_ttl", "client_ttl", "expected"),
    [(900, None, 900), (900, 60, 60), (900, 5000, 900), (300, 600, 300)],
)
async def test_lifetime_per_client_capped_by_the_global_one(
    harness_factory: Factory, global_ttl: int, client_ttl: int | None, expected: int
) -> None:
    h = await harness_factory(access_token_ttl=global_ttl)
    secret = await add_client(h, "svc", ttl=client_ttl)
    body = (await client_token(h, basic("svc", secret))).json()
    assert body["expires_in"] == expected
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] == expected


async def test_public_clients_may_not_use_it(harness: AppHarness) -> None:
    h = harness
    # Even a public client registered with the grant (the CLI refuses that) is refused.
    await add_client(h, "spa", public=True, grants=("client_credentials", "refresh_token"))
    for client_id in ("spa", "cli"):
        response = await client_token(h, {}, client_id=client_id)
        assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client"), client_id
    assert_invalid_client(await client_token(h, {}))  # no client at all: never the default client


async def test_confidential_client_without_the_grant_is_unauthorized(harness: AppHarness) -> None:
    secret = await add_client(harness, "web", grants=("password", "refresh_token"))
    response = await client_token(harness, basic("web", secret))
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_client_token_is_refused_at_users_me(harness: AppHarness) -> None:
    h = harness
    await h.add_user(username="svc")  # even when a user has the client's name
    secret = await add_client(h, "svc")  # default audience, which /users/me accepts
    token = (await client_token(h, basic("svc", secret))).json()["access_token"]
    response = await h.me(token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
