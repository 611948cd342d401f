"""What the tests share: settings, the ASGI harness, live servers, the CLI, PostgreSQL helpers.

Test files import these from here; ``tests/conftest.py`` holds only the
fixtures built on them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from authsvc.clock import FrozenClock
from authsvc.runtime import Services
from authsvc.settings import AuthSettings

# Cheap argon2 for tests; one test checks the real defaults.
CHEAP_ARGON2 = {"argon2_memory_kib": 64, "argon2_time_cost": 1, "argon2_parallelism": 1}
ISSUER = "http://127.0.0.1:9000"


def make_settings(tmp_path: Path, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "database_url": f"sqlite:///{tmp_path / 'authsvc.db'}",
        "keys_dir": tmp_path / "keys",
        **CHEAP_ARGON2,
    }
    values.update(overrides)
    return AuthSettings(**values)


def authlib_async_client() -> Any:
    """Authlib's httpx client class, without its warning about preferring httpx2.

    Authlib installs an "always" filter for its own warnings on import, so a
    pytest filterwarnings mark cannot silence this one; a local filter can.
    """
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims without verification (the tests that need signatures check them elsewhere)."""
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    """An RFC 6749 error response: status, ``error`` code, never cached."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


@dataclass
class AppHarness:
    """The ASGI app under test, its services and an HTTP client to it."""

    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    settings: AuthSettings
    app: Any = None  # the ASGI app itself (its routes, its OpenAPI document)

    async def add_user(
        self,
        username: str = "alice",
        password: str = "correct horse",
        *,
        scopes: str = "read write",
        email: str | None = "alice@example.com",
        full_name: str | None = "Alice Example",
        disabled: bool = False,
    ) -> Any:
        from authsvc.usernames import new_username, password_form

        name, key = new_username(username)
        password_hash = await self.services.hasher.hash(password_form(password) or password)
        user = await self.services.users.add(
            name,
            password_hash,
            self.clock.now(),
            username_key=key,
            scopes=frozenset(scopes.split()),
            email=email,
            full_name=full_name,
        )
        if disabled:
            await self.services.users.set_disabled(name, True, self.clock.now())
        return user

    async def add_service_client(
        self, client_id: str, *, scopes: frozenset[str] = frozenset(), audiences: tuple[str, ...] = ()
    ) -> str:
        """A confidential client_credentials client with a generated secret; returns the secret."""
        from authsvc.client_secrets import generate_secret, hash_generated
        from authsvc.store.records import Client

        secret = generate_secret()
        client = Client(
            id=client_id,
            public=False,
            grant_types=frozenset({"client_credentials"}),
            scopes=scopes,
            audiences=audiences,
            secret_hash=hash_generated(secret),
        )
        await self.services.clients.store.add(client, self.clock.now())
        return secret

    async def login(
        self, username: str = "alice", password: str = "correct horse", **extra: str
    ) -> httpx.Response:
        return await self.client.post(
            "/token", data={"grant_type": "password", "username": username, "password": password, **extra}
        )

    async def refresh(self, refresh_token: str, **extra: str) -> httpx.Response:
        return await self.client.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        )

    async def me(self, access_token: str) -> httpx.Response:
        return await self.client.get("/users/me", headers={"Authorization": f"Bearer {access_token}"})


async def wait_for_key_poll(services: Services) -> None:
    """Wait until the server's key poller (a worker thread) has read the store after this call.

    Two completed polls: one already running when the store changed may have read it before.
    """
    start = services.key_watcher.polls
    deadline = time.monotonic() + 30
    while services.key_watcher.polls < start + 2:
        assert time.monotonic() < deadline, "the key poller stopped polling"
        await asyncio.sleep(0.02)


# --- both database engines ------------------------------------------------------------------
def postgres_base_url() -> str | None:
    """The PostgreSQL server for tests; unset on a laptop (tests skip), set in CI (tests must run)."""
    return os.environ.get("AUTHSVC_TEST_POSTGRES_URL") or None


async def pg_connect(url: str, database: str | None = None) -> Any:
    """An asyncpg connection to ``database``, else to ``url``'s own (``postgres`` if none)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return await asyncpg.connect(
        host=parts.host,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        database=database or parts.database or "postgres",
        timeout=10,
    )


async def pg_admin(url: str, *statements: str, database: str | None = None) -> None:
    """Run statements on a maintenance connection to the server of ``url``.

    CREATE/DROP DATABASE from the base URL; ALTER or cut off a test database from
    ``postgres`` (``database``), never from inside it.
    """
    conn = await pg_connect(url, database)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def end_backends(url: str, which: str, value: object) -> None:
    """``pg_terminate_backend`` for the backends of ``pg_stat_activity`` whose column ``which``
    is ``value`` (``datname``, ``pid``), from ``postgres``; then wait until the server shows none
    (a backend sends its FATAL before it leaves the view). Autocommit: the view is a snapshot
    taken once per transaction."""
    conn = await pg_connect(url, "postgres")
    try:
        where = f"{which} = $1"
        await conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}", value)
        for _ in range(200):
            if not await conn.fetchval(f"SELECT count(*) FROM pg_stat_activity WHERE {where}", value):
                return
            await asyncio.sleep(0.025)
    finally:
        await conn.close()
    raise AssertionError(f"backends with {which} = {value} still running 5 s after pg_terminate_backend")


async def _create_database(base_url: str, name: str) -> None:
    await pg_admin(base_url, f'CREATE DATABASE "{name}"')


async def _drop_database(base_url: str, name: str) -> None:
    await pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_postgres_database(upgrade_schema: bool = True) -> tuple[str, Callable[[], None]]:
    """A new, empty PostgreSQL database (schema at head unless told not to) and its dropper."""
    import asyncio
    import secrets

    from sqlalchemy.engine import make_url

    base = postgres_base_url()
    if base is None:
        pytest.skip("AUTHSVC_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    name = "authsvc_t_" + secrets.token_hex(6)
    try:
        asyncio.run(_create_database(base, name))
    except (OSError, Exception) as exc:  # set but unreachable: a failure, never a skip
        pytest.fail(
            f"AUTHSVC_TEST_POSTGRES_URL is set but PostgreSQL is unusable: {type(exc).__name__}: {exc}"
        )
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    if upgrade_schema:
        from authsvc.migrations import upgrade
        from authsvc.store.sql.engine import create_engine

        async def migrate() -> None:
            engine = create_engine(url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(migrate())
    return url, lambda: asyncio.run(_drop_database(base, name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the ``authsvc`` CLI against this server's settings."""
        return run_cli(*args, env=self.env, input=input)


def authsvc_command() -> list[str]:
    return [sys.executable, "-c", "from authsvc.cli_entry import main; main()"]


def run_cli(
    *args: str, env: dict[str, str], input: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*authsvc_command(), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def server_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("AUTHSVC_") or k.upper().startswith("AUTHSVC_TEST_")
    }
    env.update(
        {
            "AUTHSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}",
            "AUTHSVC_KEYS_DIR": str(tmp_path / "live-keys"),
            "AUTHSVC_ARGON2_MEMORY_KIB": "64",
            "AUTHSVC_ARGON2_TIME_COST": "1",
        }
    )
    env.update({f"AUTHSVC_{k.upper()}": v for k, v in settings.items()})
    return env


def create_database(env: dict[str, str]) -> None:
    """What ``authsvc db upgrade`` does, in-process: every command but ``serve`` needs a database."""
    import asyncio

    from authsvc.store.sql.database import open_database

    settings = AuthSettings(database_url=env["AUTHSVC_DATABASE_URL"])

    async def create() -> None:
        await (await open_database(settings, create=True)).dispose()

    asyncio.run(create())


def start_server(
    tmp_path: Path, *, port: int | None = None, extra_args: tuple[str, ...] = (), **settings: str
) -> LiveServer:
    port = port or free_port()
    env = server_env(tmp_path, **settings)
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [*authsvc_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, env, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"server did not start: {log_path.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
