"""Session control from the command line against a live server, and `db prune`.

`users disable`, `users set-password` and `users logout` end every family of
the user: their refresh tokens turn `invalid_grant` and their access tokens
401 at /users/me (the server reads the database on each request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from authsvc.clock import FrozenClock
from authsvc.passwords import PasswordHasher
from authsvc.settings import AuthSettings
from authsvc.store.sql.database import open_database
from authsvc.store.sql.tables import refresh_tokens, sessions
from authsvc.store.sql.users import SqlUserStore
from tests.support import (
    CHEAP_ARGON2,
    AppHarness,
    LiveServer,
    run_cli,
    server_env,
    start_server,
    stop_server,
)

PASSWORD = "correct horse"


USERS = ("dora", "dan", "petra", "paul", "lena", "lars")


async def _seed_users(env: dict[str, str]) -> None:
    """The users straight into the server's database: `users add` is not under test here."""
    settings = AuthSettings(
        database_url=env["AUTHSVC_DATABASE_URL"], keys_dir=env["AUTHSVC_KEYS_DIR"], **CHEAP_ARGON2
    )
    engine = await open_database(settings)
    try:
        store = SqlUserStore(engine)
        hasher = PasswordHasher(64, 1, 1)
        for name in USERS:
            password_hash = await hasher.hash(PASSWORD)
            await store.add(
                name, password_hash, time.time(), username_key=name, scopes=frozenset({"read", "write"})
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module (each CLI run costs a process start): every test has its own users."""
    live = start_server(tmp_path_factory.mktemp("sessions-cli"))
    try:
        asyncio.run(_seed_users(live.env))
        yield live
    finally:
        stop_server(live)


@pytest.fixture
def clock() -> FrozenClock:
    """For the prune test: the harness lives in the recent past, so real time has moved on."""
    return FrozenClock(float(int(time.time()) - 500))


def login(server: LiveServer, name: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        server.url + "/token", data={"grant_type": "password", "username": name, "password": password}
    )


def tokens(server: LiveServer, name: str) -> dict[str, Any]:
    response = login(server, name)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refresh(server: LiveServer, token: str) -> httpx.Response:
    return httpx.post(server.url + "/token", data={"grant_type": "refresh_token", "refresh_token": token})


def me(server: LiveServer, token: str) -> int:
    return httpx.get(server.url + "/users/me", headers={"Authorization": f"Bearer {token}"}).status_code


def assert_ended(server: LiveServer, body: dict[str, Any]) -> None:
    response = refresh(server, body["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert me(server, body["access_token"]) == 401


def assert_alive(server: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    assert me(server, body["access_token"]) == 200
    response = refresh(server, body["refresh_token"])
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def sids_listed(server: LiveServer, name: str) -> list[str]:
    result = server.cli("users", "sessions", name)
    assert result.returncode == 0, result.stderr
    return [line.split("\t")[0] for line in result.stdout.splitlines() if line.strip()]


def sid(body: dict[str, Any]) -> str:
    return str(jwt.decode(body["refresh_token"], options={"verify_signature": False})["sid"])


def test_disable_ends_every_session_of_the_user(server: LiveServer) -> None:
    first, second = tokens(server, "dora"), tokens(server, "dora")
    second = assert_alive(server, second)  # a rotated family is ended too
    bystander = tokens(server, "dan")
    result = server.cli("users", "disable", "dora")
    assert result.returncode == 0, result.stderr
    assert "revoked 2 sessions" in result.stdout
    assert_ended(server, first)
    assert_ended(server, second)
    assert login(server, "dora").json()["error"] == "invalid_grant"
    assert_alive(server, bystander)
    # enabling lets the user log in again; the old families stay ended
    assert server.cli("users", "enable", "dora").returncode == 0
    assert_alive(server, tokens(server, "dora"))
    assert_ended(server, second)


def test_set_password_ends_every_session_of_the_user(server: LiveServer) -> None:
    first, second = tokens(server, "petra"), tokens(server, "petra")
    bystander = tokens(server, "paul")
    result = server.cli("users", "set-password", "petra", "--password-stdin", input="new battery staple\n")
    assert result.returncode == 0, result.stderr
    assert "revoked 2 sessions" in result.stdout
    assert_ended(server, first)
    assert_ended(server, second)
    assert login(server, "petra").status_code == 400
    assert login(server, "petra", "new battery staple").status_code == 200
    assert_alive(server, bystander)


def test_sessions_lists_live_families_and_logout_ends_them(server: LiveServer) -> None:
    first, second, third = (tokens(server, "lena") for _ in range(3))
    bystander = tokens(server, "lars")
    result = server.cli("users", "sessions", "lena")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        sid(first),
        sid(second),
        sid(third),
    ]
    assert "cli" in result.stdout.splitlines()[0]
    assert "read write" in result.stdout.splitlines()[0]
    # a family revoked at /revoke is no longer listed; a rotated one keeps its sid
    assert httpx.post(server.url + "/revoke", data={"token": third["refresh_token"]}).status_code == 200
    second = assert_alive(server, second)
    assert sids_listed(server, "lena") == [sid(first), sid(second)]

    result = server.cli("users", "logout", "lena")
    assert result.returncode == 0, result.stderr
    assert "revoked 2 sessions" in result.stdout
    assert sids_listed(server, "lena") == []
    assert_ended(server, first)
    assert_ended(server, second)
    assert_alive(server, bystander)
    # logging out is not disabling: a new login works
    assert_alive(server, tokens(server, "lena"))


# --- db prune -----------------------------------------------------------------------
async def test_db_prune_deletes_expired_rows(harness_factory: Callable[..., Any], tmp_path: Path) -> None:
    """The harness clock stands 500 s in the past; the CLI prunes at the real time."""
    harness: AppHarness = await harness_factory(
        refresh_token_ttl=100, refresh_token_max_ttl=1000, refresh_reuse_grace=5
    )
    await harness.add_user()
    a1 = (await harness.login()).json()  # family A: ends at real now + 500
    harness.clock.advance(50)
    a2 = await harness.refresh(a1["refresh_token"])  # a1, a2 rows expire in the past
    assert a2.status_code == 200
    assert (
        await harness.client.post("/revoke", data={"token": a2.json()["refresh_token"]})
    ).status_code == 200
    harness.clock.advance(400)
    b1 = (await harness.login()).json()  # family B: its token lives until real now + 50
    assert (await harness.client.post("/revoke", data={"token": b1["access_token"]})).status_code == 200

    env = server_env(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'authsvc.db'}", keys_dir=str(tmp_path / "keys")
    )
    result = run_cli("db", "prune", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 grace_bodies" in result.stdout
    assert "2 refresh_tokens" in result.stdout
    assert "1 sessions" in result.stdout  # A: revoked and without tokens; B lives on
    assert "0 revoked_access_tokens" in result.stdout

    async with harness.services.engine.connect() as conn:
        remaining = (await conn.execute(select(refresh_tokens.c.jti))).scalars().all()
        session_ids = (await conn.execute(select(sessions.c.id))).scalars().all()
        assert (await conn.execute(select(func.count()).select_from(refresh_tokens))).scalar_one() == 1
    assert remaining == [jwt.decode(b1["refresh_token"], options={"verify_signature": False})["jti"]]
    assert session_ids == [sid(b1)]
    assert (await harness.refresh(b1["refresh_token"])).status_code == 200
