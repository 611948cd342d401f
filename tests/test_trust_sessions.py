"""Sessions under attack (issue #13, findings 3 and 10; CONTRACT.md "Trust rules").

- A login (or refresh) that read the user or the client before it was given a
  new password, disabled or removed does not survive the change: it is
  checked in the transaction that writes the session. Tested as a race: four
  loops log in with the old credentials while the CLI command runs, round
  after round, on SQLite, ``--workers 2`` and PostgreSQL; afterwards no token
  any loop obtained may refresh, reach ``/users/me`` or introspect active.
  And one login at a time on the ASGI harness, with a login whose password
  check outlasts the command.
- Stored grace bodies (live tokens) are gone within 60 s of their grace
  ending, with no request and no cron run.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import AppHarness, LiveServer, fresh_postgres_database
from tests.trust_support import (
    REAL_ARGON2,
    add_confidential_client,
    brief,
    cli_env,
    cli_ok,
    live_servers,
    password_form,
    pg_rows,
    run_cli_async,
    sqlite_rows,
)

LOOPS = 4
ROUNDS = 3
NO_LIMITS = {"login_max_per_user": "1000000", "login_max_per_address": "1000000"}


@dataclass
class Tokens:
    """What the loops obtained: every access token, and the newest refresh token of each session."""

    access: list[str] = field(default_factory=list)
    refresh: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoginAs:
    """How a loop logs in: the form, and Basic credentials for a confidential client."""

    form: dict[str, str]
    auth: tuple[str, str] | None = None

    @property
    def client_fields(self) -> dict[str, str]:
        return {"client_id": self.form["client_id"]} if "client_id" in self.form else {}


async def _login_loop(
    base_url: str, login: LoginAs, stop: asyncio.Event, out: Tokens, ready: Callable[[], None]
) -> None:
    """Log in (and refresh once) as fast as possible until told to stop."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        while not stop.is_set():
            r = await http.post("/token", data=login.form, auth=login.auth)
            if r.status_code != 200:
                continue
            first = r.json()
            out.access.append(first["access_token"])
            again = await http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": first["refresh_token"],
                    **login.client_fields,
                },
                auth=login.auth,
            )
            if again.status_code == 200:
                out.access.append(again.json()["access_token"])
                out.refresh.append(again.json()["refresh_token"])
            else:
                out.refresh.append(first["refresh_token"])
            if len(out.refresh) == 1:
                ready()


async def _survivors(
    server: LiveServer, inspector: tuple[str, str], logins: list[LoginAs], tokens: list[Tokens]
) -> list[str]:
    """Tokens that still work after the change (there must be none)."""
    await asyncio.sleep(1.1)  # CONTRACT.md: revocations reach /users/me within 1 s
    found: list[str] = []
    gate = asyncio.Semaphore(8)

    async def access(http: httpx.AsyncClient, token: str) -> None:
        async with gate:
            me = await http.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            if me.status_code != 401:
                found.append(f"/users/me: {me.status_code}")
            seen = await http.post("/introspect", data={"token": token}, auth=inspector)
            if seen.json() != {"active": False}:
                found.append("access token introspects active")

    async def refresh(http: httpx.AsyncClient, login: LoginAs, token: str) -> None:
        async with gate:
            seen = await http.post("/introspect", data={"token": token}, auth=inspector)
            if seen.json() != {"active": False}:
                found.append("refresh token introspects active")
            r = await http.post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": token, **login.client_fields},
                auth=login.auth,
            )
            if r.status_code == 200:
                found.append("refresh token still refreshes")

    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        checks = [access(http, token) for got in tokens for token in got.access]
        for login, got in zip(logins, tokens, strict=True):
            checks.extend(refresh(http, login, token) for token in got.refresh)
        await asyncio.gather(*checks)
    return found


async def _race(
    server: LiveServer,
    inspector: tuple[str, str],
    logins: list[LoginAs],
    commands: list[tuple[str, ...]],
    *,
    stdin: str | None = None,
    then: tuple[str, ...] | None = None,
) -> tuple[int, list[str]]:
    """Loops hammer the logins while the commands run one after another; (sessions, survivors).

    ``then`` runs after the loops have stopped, before the check: ``users enable``
    after a disable, so that a session that slipped past the disable shows.
    """
    stop = asyncio.Event()
    going = asyncio.Event()
    waiting = [len(logins)]

    def ready() -> None:
        waiting[0] -= 1
        if not waiting[0]:
            going.set()

    tokens = [Tokens() for _ in logins]
    loops = [
        asyncio.ensure_future(_login_loop(server.url, login, stop, out, ready))
        for login, out in zip(logins, tokens, strict=True)
    ]
    try:
        # every loop has logged in at least once: all are hammering when the change starts
        await asyncio.wait_for(going.wait(), 60)
        for command in commands:
            code, out, err = await run_cli_async(*command, env=server.env, input=stdin)
            assert code == 0, (command, out, err)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    if then is not None:
        cli_ok(server.env, *then)
    sessions = sum(len(t.refresh) for t in tokens)
    return sessions, await _survivors(server, inspector, logins, tokens)


@pytest.fixture(params=["sqlite", "sqlite-workers-2", "postgresql"])
def race_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    # Real argon2 cost: the password check is the window in which a change can slip by.
    settings = {**REAL_ARGON2, **NO_LIMITS}
    if request.param == "postgresql":
        url, drop = fresh_postgres_database()
        try:
            with live_servers(tmp_path, database_url=url, **settings) as (server,):
                yield server
        finally:
            drop()
        return
    extra = ("--workers", "2") if request.param == "sqlite-workers-2" else ()
    with live_servers(tmp_path, extra_args=extra, issuer="http://127.0.0.1:9141", **settings) as (server,):
        yield server


def _user_with_inspector(server: LiveServer, password: str) -> tuple[str, str]:
    cli_ok(server.env, "users", "add", "alice", "--password-stdin", input=password + "\n")
    return "inspector", add_confidential_client(server.env, "inspector")


@pytest.mark.slow
async def test_password_change_ends_logins_in_flight(race_server: LiveServer) -> None:
    server = race_server
    passwords = [f"password-round-{i}" for i in range(ROUNDS + 1)]
    inspector = _user_with_inspector(server, passwords[0])
    for round_ in range(ROUNDS):
        logins = [LoginAs(password_form("alice", passwords[round_]))] * LOOPS
        sessions, survivors = await _race(
            server,
            inspector,
            logins,
            [("users", "set-password", "alice", "--password-stdin")],
            stdin=passwords[round_ + 1] + "\n",
        )
        assert not survivors, f"round {round_}, {sessions} sessions: {dict(Counter(survivors))}"


@pytest.mark.slow
async def test_disabling_a_user_ends_logins_in_flight(race_server: LiveServer) -> None:
    server = race_server
    inspector = _user_with_inspector(server, "alice-password")
    for round_ in range(ROUNDS):
        logins = [LoginAs(password_form("alice", "alice-password"))] * LOOPS
        sessions, survivors = await _race(
            server, inspector, logins, [("users", "disable", "alice")], then=("users", "enable", "alice")
        )
        assert not survivors, f"round {round_}, {sessions} sessions: {dict(Counter(survivors))}"


@pytest.mark.slow
async def test_removing_a_client_ends_logins_in_flight(race_server: LiveServer) -> None:
    server = race_server
    inspector = _user_with_inspector(server, "alice-password")
    for round_ in range(2):
        public, confidential = f"pub-{round_}", f"conf-{round_}"
        cli_ok(
            server.env,
            "clients",
            "add",
            public,
            "--public",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
        )
        secret = add_confidential_client(server.env, confidential, "password", "refresh_token")
        logins = [
            LoginAs(password_form("alice", "alice-password", client_id=public)),
            LoginAs(password_form("alice", "alice-password", client_id=public)),
            LoginAs(password_form("alice", "alice-password"), auth=(confidential, secret)),
            LoginAs(password_form("alice", "alice-password"), auth=(confidential, secret)),
        ]
        commands = [("clients", "remove", confidential), ("clients", "remove", public)]
        sessions, survivors = await _race(server, inspector, logins, commands)
        assert not survivors, f"round {round_}, {sessions} sessions: {dict(Counter(survivors))}"


# --- the same, one login at a time, on the ASGI harness ---------------------------------------
# The stored hash is made slow to check (argon2's cost lives in the hash itself, ~2 s here):
# the command starts first, the login reads the user and the client a moment later, and
# the command has committed long before the login's password check is over.
SLOW_PASSWORD = "slow-password-1"


@pytest.fixture(scope="module")
def slow_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=250, memory_cost=19456, parallelism=1).hash(SLOW_PASSWORD)


# change: (command, its stdin, the client the login uses, a command to run before the check)
CHANGES: dict[str, tuple[tuple[str, ...], str | None, str, tuple[str, ...] | None]] = {
    "set-password": (("users", "set-password", "alice", "--password-stdin"), "a-new-password\n", "cli", None),
    "disable": (("users", "disable", "alice"), None, "cli", ("users", "enable", "alice")),
    "remove-client": (("clients", "remove", "mobile"), None, "mobile", None),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_login_that_read_the_old_state_does_not_survive_the_change(
    harness_factory: Callable[..., Any], tmp_path: Path, slow_hash: str, change: str
) -> None:
    import sqlite3

    command, stdin, client_id, then = CHANGES[change]
    h: AppHarness = await harness_factory(**{k: int(v) for k, v in NO_LIMITS.items()})
    await h.add_user("alice", SLOW_PASSWORD)
    env = cli_env(tmp_path)
    if client_id != "cli":
        cli_ok(
            env, "clients", "add", client_id, "--public", "--grant", "password", "--grant", "refresh_token"
        )
    conn = sqlite3.connect(tmp_path / "authsvc.db")
    with conn:  # the stored hash, replaced by one that is slow to check
        conn.execute("UPDATE users SET password_hash = ? WHERE username = 'alice'", (slow_hash,))
    conn.close()
    running = asyncio.ensure_future(run_cli_async(*command, env=env, input=stdin))
    login = asyncio.ensure_future(
        h.client.post("/token", data=password_form("alice", SLOW_PASSWORD, client_id=client_id))
    )
    code, out, err = await running
    assert code == 0, (out, err)
    # (Were the login done already, the command would have revoked its session: same checks.)
    r = await login
    if then is not None:
        cli_ok(env, *then)
    if r.status_code != 200:
        assert r.status_code in (400, 401), brief(r)
        return
    await asyncio.sleep(1.1)  # CONTRACT.md: revocations reach /users/me within 1 s
    tokens = r.json()
    me = await h.me(tokens["access_token"])
    again = await h.refresh(tokens["refresh_token"], client_id=client_id)
    assert (me.status_code, again.status_code != 200) == (401, True), (
        f"a login that read alice before `{' '.join(command)}` survived it: "
        f"/users/me {brief(me)}, refresh {brief(again)}"
    )


# --- finding 10: grace bodies --------------------------------------------------------------------
GRACE = 2
GRACE_SQL = "SELECT grace_until FROM refresh_tokens WHERE grace_body IS NOT NULL"


async def _spend_with_grace(server: LiveServer) -> None:
    cli_ok(server.env, "users", "add", "alice", "--password-stdin", input="alice-password\n")
    async with httpx.AsyncClient(base_url=server.url) as http:
        login = await http.post("/token", data=password_form("alice", "alice-password"))
        assert login.status_code == 200, brief(login)
        refreshed = await http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, brief(refreshed)


async def _watch_grace_bodies(read: Callable[[], Any]) -> None:
    """Poll (no request to the server) until no grace body is left, up to 65 s past the grace."""
    rows = await read()
    assert len(rows) == 1, f"a refresh with grace {GRACE} s stored {len(rows)} bodies"
    grace_until = float(rows[0][0])
    while True:
        rows = await read()
        if not rows:
            return
        late = time.time() - grace_until
        assert late <= 60, f"a stored grace body (live tokens) is still readable {late:.0f} s after its grace"
        await asyncio.sleep(0.5)


@pytest.mark.slow
async def test_grace_bodies_are_gone_within_a_minute_on_sqlite(tmp_path: Path) -> None:
    with live_servers(tmp_path, refresh_reuse_grace=str(GRACE)) as (server,):
        await _spend_with_grace(server)
        database = tmp_path / "live.db"

        async def read() -> list[tuple[Any, ...]]:
            return await asyncio.to_thread(sqlite_rows, database, GRACE_SQL)

        await _watch_grace_bodies(read)


@pytest.mark.slow
async def test_grace_bodies_are_gone_within_a_minute_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    url = postgres_url
    with live_servers(tmp_path, database_url=url, refresh_reuse_grace=str(GRACE)) as (server,):
        await _spend_with_grace(server)
        await _watch_grace_bodies(lambda: pg_rows(url, GRACE_SQL))
