"""Helpers for the trust battery (issue #13): attacks through the public surface only.

Everything here talks HTTP to the ASGI harness or to real ``authsvc serve``
processes, runs the CLI through its entry point, reads the database file or
rows, and reads a server's CPU time from ``/proc``. Nothing imports the
service's internals, so the battery stays valid whatever the implementation.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    ISSUER,
    LiveServer,
    authsvc_command,
    pg_connect,
    run_cli,
    server_env,
    start_server,
    stop_server,
)

__all__ = [
    "REAL_ARGON2",
    "Request",
    "add_confidential_client",
    "assert_limited",
    "assert_one_line_error",
    "audit_count",
    "brief",
    "burst",
    "cli_env",
    "cli_ok",
    "client_secret",
    "live_servers",
    "password_form",
    "pg_rows",
    "process_tree_cpu",
    "redis_url",
    "run_cli_async",
    "sqlite_rows",
]

#: The service's default (OWASP minimum) argon2 cost, for tests that measure hashing.
REAL_ARGON2 = {"argon2_memory_kib": "19456", "argon2_time_cost": "2", "argon2_parallelism": "1"}


def redis_url() -> str:
    """The Redis server for tests: skip when unset (a laptop), fail when set and unreachable (CI)."""
    url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
    if not url:
        pytest.skip("AUTHSVC_TEST_REDIS_URL is not set: Redis tests skipped")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except Exception as exc:  # set but unreachable: a failure, never a skip
        pytest.fail(f"AUTHSVC_TEST_REDIS_URL is set but Redis is unusable: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    return url


# --- the command line ----------------------------------------------------------------------
def cli_env(tmp_path: Path, *, database_url: str | None = None, **settings: str) -> dict[str, str]:
    """CLI settings pointing at the ASGI harness's database and keys (see conftest.make_settings)."""
    return server_env(
        tmp_path,
        database_url=database_url or f"sqlite:///{tmp_path / 'authsvc.db'}",
        keys_dir=str(tmp_path / "keys"),
        issuer=ISSUER,
        **settings,
    )


def cli_ok(env: dict[str, str], *args: str, input: str | None = None) -> str:
    """Run the CLI and require success; its stdout."""
    result = run_cli(*args, env=env, input=input)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], what: str = "") -> None:
    """CONTRACT.md: exit 1, one clear line on stderr, no traceback."""
    what = what or " ".join(map(str, result.args[-3:]))
    assert result.returncode == 1, f"{what}: exit {result.returncode}: {result.stdout.strip()!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr


_SECRET = re.compile(r"client secret \(shown once, store it now\): (\S+)")


def client_secret(stdout: str) -> str:
    """The generated secret ``clients add`` prints once."""
    match = _SECRET.search(stdout)
    assert match is not None, stdout
    return match.group(1)


def add_confidential_client(env: dict[str, str], client_id: str, *grants: str) -> str:
    """``clients add`` with a generated secret; returns the secret."""
    flags = [f"--grant={grant}" for grant in grants or ("client_credentials",)]
    return client_secret(cli_ok(env, "clients", "add", client_id, *flags))


# --- HTTP ----------------------------------------------------------------------------------
def password_form(username: str, password: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password, **extra}


@dataclass(frozen=True)
class Request:
    """One POST of a burst: the base URL, path, form and headers."""

    base: str
    path: str
    data: dict[str, str]
    headers: tuple[tuple[str, str], ...] = ()


async def burst(requests: Sequence[Request], client: httpx.AsyncClient | None = None) -> list[httpx.Response]:
    """Send every request at once, each on its own connection, released together.

    Every request first opens its connection (a cheap GET /healthz), then all
    wait on one gate, so the POSTs leave within microseconds of each other.
    """
    gate = asyncio.Event()
    ready = 0

    async def one(request: Request) -> httpx.Response:
        nonlocal ready
        async with httpx.AsyncClient(base_url=request.base, timeout=60) as own:
            await own.get("/healthz")
            ready += 1
            if ready == len(requests):
                gate.set()
            await gate.wait()
            return await own.post(request.path, data=request.data, headers=list(request.headers))

    async def one_shared(request: Request) -> httpx.Response:
        assert client is not None
        await gate.wait()
        return await client.post(request.path, data=request.data, headers=list(request.headers))

    if client is not None:  # an in-process ASGI client: no connections to open
        tasks = [asyncio.ensure_future(one_shared(r)) for r in requests]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))
    return list(await asyncio.gather(*(one(r) for r in requests)))


def brief(response: httpx.Response) -> str:
    """Status and error code of a response, for assertion messages (never a token)."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} (not JSON)"
    error = body.get("error") if isinstance(body, dict) else None
    return f"{response.status_code} {error or ('tokens' if 'access_token' in str(body) else body)}"


def assert_limited(response: httpx.Response) -> None:
    """A login refused by the limits: 429, Retry-After ≥ 1, invalid_grant, never cached."""
    assert response.status_code == 429, brief(response)
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"


# --- live servers --------------------------------------------------------------------------
@contextmanager
def live_servers(
    tmp_path: Path, count: int = 1, *, extra_args: tuple[str, ...] = (), **settings: str
) -> Iterator[list[LiveServer]]:
    """``count`` servers sharing ``settings`` (and tmp_path's keys directory), stopped after."""
    servers: list[LiveServer] = []
    try:
        for _ in range(count):
            servers.append(start_server(tmp_path, extra_args=extra_args, **settings))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def audit_count(servers: Sequence[LiveServer], event: str) -> int:
    """How many audit lines with this event the servers have written so far."""
    total = 0
    for server in servers:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                total += 1
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.append(int(child))
            found.extend(_descendants(int(child)))
    return found


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (workers)."""
    total = 0
    for each in [pid, *_descendants(pid)]:
        try:
            stat = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


# --- the database --------------------------------------------------------------------------
def sqlite_rows(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the SQLite file, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


async def pg_rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on a PostgreSQL database."""
    conn = await pg_connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


async def run_cli_async(*args: str, env: dict[str, str], input: str | None = None) -> tuple[int, str, str]:
    """The CLI as a child process, without blocking the event loop (for races)."""
    process = await asyncio.create_subprocess_exec(
        *authsvc_command(),
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(input.encode() if input else None), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
