"""A real OAuth client library against a live server: Authlib's httpx client.

Authlib logs in with the password grant, then keeps calling /users/me across
several access-token expiries; its own auto-refresh must rotate the refresh
token each time, and every rotated token must be accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from tests.support import LiveServer, authlib_async_client

pytestmark = pytest.mark.slow

PASSWORD = "correct horse"
TTL = 2


async def test_authlib_auto_refresh_across_expiries(live_server_factory: Callable[..., LiveServer]) -> None:
    oauth_client_class = authlib_async_client()

    server = live_server_factory(access_token_ttl=str(TTL), clock_skew="0")
    added = server.cli(
        "users", "add", "alice", "--password-stdin", "--scope", "read write", input=PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr

    updates: list[dict[str, Any]] = []

    async def update_token(token: dict[str, Any], refresh_token: str | None = None, **_: Any) -> None:
        updates.append({"token": dict(token), "old_refresh_token": refresh_token})

    token_endpoint = server.url + "/token"
    async with oauth_client_class(
        client_id="cli",
        token_endpoint_auth_method="none",
        token_endpoint=token_endpoint,
        update_token=update_token,
        leeway=0,
        timeout=10,
    ) as client:
        first = await client.fetch_token(token_endpoint, username="alice", password=PASSWORD)
        assert first["token_type"] == "Bearer"
        assert first["expires_in"] == TTL
        refresh_tokens = [first["refresh_token"]]
        sid = jwt.decode(first["refresh_token"], options={"verify_signature": False})["sid"]

        for cycle in range(3):
            # still fresh: no refresh
            me = await client.get(server.url + "/users/me")
            assert me.status_code == 200, me.text
            assert me.json()["username"] == "alice"
            assert len(updates) == cycle
            await asyncio.sleep(TTL + 0.3)  # past the access token's exp
            assert client.token.is_expired(leeway=0)
            me = await client.get(server.url + "/users/me")  # Authlib refreshes first
            assert me.status_code == 200, me.text
            assert len(updates) == cycle + 1
            update = updates[-1]
            assert update["old_refresh_token"] == refresh_tokens[-1]
            new_refresh = update["token"]["refresh_token"]
            assert new_refresh not in refresh_tokens  # rotated
            assert jwt.decode(new_refresh, options={"verify_signature": False})["sid"] == sid
            assert client.token["refresh_token"] == new_refresh
            refresh_tokens.append(new_refresh)

        # the library's stale tokens are spent: an old one replayed now revokes the family
        async with httpx.AsyncClient() as plain:
            stale = await plain.post(
                token_endpoint, data={"grant_type": "refresh_token", "refresh_token": refresh_tokens[0]}
            )
        assert stale.status_code == 400
        assert stale.json()["error"] == "invalid_grant"
        assert (await client.get(server.url + "/users/me")).status_code == 401
