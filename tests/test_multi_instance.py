"""Several processes, one database: every guarantee holds across them.

Two `authsvc serve` processes on one PostgreSQL database (and one SQLite file
served by `--workers 2`): a token issued by A refreshes at B; a token spent at
A and replayed at B revokes the family; 20 concurrent refreshes split across
both give exactly one success; both serve the same JWKS; a rotation run once
is seen by both without restart.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    LiveServer,
    fresh_postgres_database,
    run_cli,
    server_env,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["file", "database"])
def postgres_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two instances on one PostgreSQL database; with the database key store they
    share no directory at all (each gets its own keys dir, which stays unused)."""
    url, drop = fresh_postgres_database()
    settings = {"database_url": url, "issuer": "http://127.0.0.1:9100", "key_store": request.param}
    if request.param == "database":
        settings["key_passphrase"] = "correct horse battery staple"
    shared = request.param == "file"  # the file store needs a shared directory
    dir_a, dir_b = (tmp_path, tmp_path) if shared else (tmp_path / "a", tmp_path / "b")
    dir_a.mkdir(exist_ok=True)
    dir_b.mkdir(exist_ok=True)
    a = start_server(dir_a, **settings)
    b = start_server(dir_b, **settings)
    try:
        yield a, b
    finally:
        stop_server(a)
        stop_server(b)
        drop()


@pytest.fixture
def sqlite_workers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    server = start_server(tmp_path, extra_args=("--workers", "2"), issuer="http://127.0.0.1:9101")
    try:
        yield server, server  # the kernel spreads connections over both workers
    finally:
        stop_server(server)


def _login(server: LiveServer) -> dict[str, str]:
    added = server.cli("users", "add", "alice", "--password-stdin", "--scope", "read", input="pw-alice\n")
    assert added.returncode == 0, added.stderr
    response = httpx.post(
        server.url + "/token", data={"grant_type": "password", "username": "alice", "password": "pw-alice"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _refresh(server: LiveServer, token: str) -> httpx.Response:
    return httpx.post(server.url + "/token", data={"grant_type": "refresh_token", "refresh_token": token})


async def _race(servers: list[LiveServer], token: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *[
                client.post(
                    servers[i % len(servers)].url + "/token",
                    data={"grant_type": "refresh_token", "refresh_token": token},
                )
                for i in range(n)
            ]
        )
    return [r.status_code for r in responses]


def _check_pair(a: LiveServer, b: LiveServer) -> None:
    tokens = _login(a)
    # issued by A, refreshed at B
    at_b = _refresh(b, tokens["refresh_token"])
    assert at_b.status_code == 200, at_b.text
    # spent at A, replayed at B: reuse revokes the family
    current = at_b.json()["refresh_token"]
    assert _refresh(a, current).status_code == 200
    replay = _refresh(b, current)
    assert replay.json()["error"] == "invalid_grant"
    assert (
        httpx.get(
            b.url + "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).status_code
        == 401
    )

    # 20 concurrent refreshes across both: exactly one success
    fresh = _refresh(a, _login_again(a)["refresh_token"]).json()["refresh_token"]
    codes = asyncio.run(_race([a, b], fresh, 20))
    assert codes.count(200) == 1, codes
    assert set(codes) == {200, 400}

    # identical JWKS
    assert (
        httpx.get(a.url + "/.well-known/jwks.json").content
        == httpx.get(b.url + "/.well-known/jwks.json").content
    )

    # a rotation run once is seen by both without restart
    before = httpx.get(a.url + "/.well-known/jwks.json").json()["keys"]
    rotated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rotate_keys.py"), "--force"],
        env=a.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ja = httpx.get(a.url + "/.well-known/jwks.json").json()["keys"]
        jb = httpx.get(b.url + "/.well-known/jwks.json").json()["keys"]
        if len(ja) == len(jb) == len(before) + 1:
            break
        time.sleep(0.2)
    assert len(ja) == len(jb) == len(before) + 1


def _login_again(server: LiveServer) -> dict[str, str]:
    response = httpx.post(
        server.url + "/token", data={"grant_type": "password", "username": "alice", "password": "pw-alice"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_two_servers_on_postgresql(postgres_pair: tuple[LiveServer, LiveServer]) -> None:
    _check_pair(*postgres_pair)


def test_two_workers_on_sqlite(sqlite_workers: tuple[LiveServer, LiveServer]) -> None:
    _check_pair(*sqlite_workers)


def test_two_workers_on_postgresql(tmp_path: Path) -> None:
    url, drop = fresh_postgres_database()
    server = start_server(
        tmp_path, extra_args=("--workers", "2"), issuer="http://127.0.0.1:9103", database_url=url
    )
    try:
        _check_pair(server, server)
    finally:
        stop_server(server)
        drop()


def test_serve_refuses_an_old_postgresql_schema(tmp_path: Path) -> None:
    url, drop = fresh_postgres_database(upgrade_schema=False)
    try:
        env = server_env(tmp_path, database_url=url)
        result = run_cli("serve", "--port", "0", env=env)
        assert result.returncode == 1
        assert "authsvc db upgrade" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        upgraded = run_cli("db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        current = run_cli("db", "current", env=env)
        assert "upgrade" not in current.stdout
    finally:
        drop()
