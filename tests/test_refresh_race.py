"""Concurrent refreshes of one token against real server processes on one database.

With the default grace 0, of N simultaneous refreshes exactly one succeeds and
the session is then revoked (CONTRACT.md, Tokens); with a grace window every
racer gets the winner's body. Also across two server processes sharing the
database and key directory. The `database_url` fixture runs the races on a
SQLite file and on PostgreSQL (when AUTHSVC_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, free_port, start_server, stop_server

pytestmark = pytest.mark.slow

N = 20
PASSWORD = "correct horse"


def add_user(server: LiveServer, name: str = "alice") -> None:
    result = server.cli(
        "users", "add", name, "--password-stdin", "--scope", "read write", input=PASSWORD + "\n"
    )
    assert result.returncode == 0, result.stderr


async def login(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.post(
        url + "/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def race(client: httpx.AsyncClient, urls: list[str], token: str) -> list[httpx.Response]:
    """N refreshes of ``token`` at once, spread round-robin over ``urls``."""
    start = asyncio.Event()

    async def one(url: str) -> httpx.Response:
        await start.wait()
        return await client.post(url + "/token", data={"grant_type": "refresh_token", "refresh_token": token})

    tasks = [asyncio.ensure_future(one(url)) for url, _ in zip(itertools.cycle(urls), range(N), strict=False)]
    await asyncio.sleep(0)
    start.set()
    return list(await asyncio.gather(*tasks))


def outcome(responses: list[httpx.Response]) -> tuple[list[httpx.Response], list[str]]:
    won = [r for r in responses if r.status_code == 200]
    lost = [r.json()["error"] for r in responses if r.status_code != 200]
    assert all(r.status_code in (200, 400) for r in responses), [r.status_code for r in responses]
    return won, lost


async def assert_family_revoked(client: httpx.AsyncClient, urls: list[str], tokens: dict[str, Any]) -> None:
    for url in urls:
        response = await client.post(
            url + "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        me = await client.get(
            url + "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 401


async def test_one_of_n_simultaneous_refreshes_wins(
    live_server_factory: Callable[..., LiveServer], database_url: str
) -> None:
    server = live_server_factory(database_url=database_url)
    add_user(server)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=N)) as client:
        tokens = await login(client, server.url)
        won, lost = outcome(await race(client, [server.url], tokens["refresh_token"]))
        assert len(won) == 1
        assert lost == ["invalid_grant"] * (N - 1)
        # the losers' replays were reuse: the session is revoked, the winner's tokens too
        await assert_family_revoked(client, [server.url], won[0].json())
        await assert_family_revoked(client, [server.url], tokens)
        # and the user can simply log in again
        fresh = await login(client, server.url)
        assert (
            await client.get(
                server.url + "/users/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}
            )
        ).status_code == 200


async def test_with_grace_every_racer_gets_the_same_body(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(refresh_reuse_grace="10")
    add_user(server)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=N)) as client:
        tokens = await login(client, server.url)
        responses = await race(client, [server.url], tokens["refresh_token"])
        won, lost = outcome(responses)
        assert lost == []
        assert len({r.content for r in won}) == 1
        successor = won[0].json()
        # nothing was revoked: the one successor works, exactly once more
        again = await client.post(
            server.url + "/token",
            data={"grant_type": "refresh_token", "refresh_token": successor["refresh_token"]},
        )
        assert again.status_code == 200
        me = await client.get(
            server.url + "/users/me", headers={"Authorization": f"Bearer {again.json()['access_token']}"}
        )
        assert me.status_code == 200


async def test_one_winner_across_two_processes(tmp_path: Path, database_url: str) -> None:
    port_a, port_b = free_port(), free_port()
    # one issuer for both, as behind a balancer; one database, one keys directory
    settings = {"issuer": f"http://127.0.0.1:{port_a}", "database_url": database_url}
    servers: list[LiveServer] = []
    try:
        servers.append(start_server(tmp_path, port=port_a, **settings))
        servers.append(start_server(tmp_path, port=port_b, **settings))
        add_user(servers[0])
        urls = [s.url for s in servers]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=N)) as client:
            for round_ in range(2):  # twice, so either process may win
                tokens = await login(client, urls[round_])
                won, lost = outcome(await race(client, urls, tokens["refresh_token"]))
                assert len(won) == 1
                assert lost == ["invalid_grant"] * (N - 1)
                await assert_family_revoked(client, urls, won[0].json())
    finally:
        for server in servers:
            stop_server(server)
