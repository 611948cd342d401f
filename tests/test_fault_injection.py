"""Faults from outside: the database goes away, the key store turns unreadable, the disk fills.

* Database unavailable (SQLite and PostgreSQL): ``/readyz`` 503, every route that
  needs the database 503 ``temporarily_unavailable`` (RFC 6749 body, no-store),
  the routes that do not (JWKS, metadata, liveness, metrics) keep answering, a
  transaction cut in the middle changes nothing, and service returns with it.
* Key store unreadable: the last key set serves for ``STALE_LIMIT`` seconds
  (one clear log line), then 503 everywhere a key is needed, then recovery. A
  signing key whose private half is missing is never replaced by another key.
* Disk full or permission denied while rotating (in-process and through
  ``authsvc keys rotate``): the store is unchanged, one clear line, and the
  running server keeps signing. (Crashes at every step and ``rotate_keys.py``
  itself are in tests/test_rotation_crash.py.)
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from authsvc.keys import ring as ring_module
from authsvc.keys import store_file
from authsvc.keys.rotation import rotate
from authsvc.keys.setup import lifetimes
from tests.support import AppHarness, authsvc_command, end_backends, pg_admin, wait_for_key_poll

UNAVAILABLE = "temporarily_unavailable"


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (
        f"expected 503 from {what}, got {response.status_code}: {response.text}"
    )
    body = response.json()
    assert body["error"] == UNAVAILABLE, f"expected {UNAVAILABLE} from {what}, got {body}"
    assert isinstance(body.get("error_description"), str)
    assert response.headers["cache-control"] == "no-store", f"expected no-store from {what}"
    assert "Traceback" not in response.text


def kid_of(token: str) -> str:
    import base64

    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


# --- the database -----------------------------------------------------------------------------------
class Outage:
    """Switch the services' database off and on: new connections and statements fail like a lost server.

    Both engines go down: the async one (users, clients) and the session store's threaded one.
    ``only`` limits the failure to statements containing that text (a transaction cut midway).
    """

    def __init__(self, services: Any) -> None:
        self.services = services
        self.engines = [services.engine.sync_engine, services.session_store.db.engine]
        self.down = False
        self.only: str | None = None
        self.failures = 0
        for engine in self.engines:
            event.listen(engine, "do_connect", self._connect)
            event.listen(engine, "before_cursor_execute", self._execute)

    def _connect(self, dialect: Any, *_args: Any) -> None:
        if self.down and self.only is None:
            self.failures += 1
            raise dialect.loaded_dbapi.OperationalError("could not connect to server: Connection refused")

    def _execute(self, conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        if self.down and (self.only is None or self.only in statement):
            self.failures += 1
            error = conn.dialect.loaded_dbapi.OperationalError("server closed the connection")
            raise OperationalError(statement, params, error)

    async def start(self, only: str | None = None) -> None:
        self.down, self.only = True, only
        if only is None:
            # pooled connections go too: the next request must reconnect
            await self.services.engine.dispose()
            await self.services.session_store.db.dispose()

    def stop(self) -> None:
        self.down, self.only = False, None

    def remove(self) -> None:
        for engine in self.engines:
            event.remove(engine, "do_connect", self._connect)
            event.remove(engine, "before_cursor_execute", self._execute)


@pytest.fixture
async def alice(db_harness: AppHarness) -> AppHarness:
    await db_harness.add_user()
    return db_harness


async def test_database_outage_is_503_and_service_returns(alice: AppHarness) -> None:
    harness = alice
    before = (await harness.login()).json()
    outage = Outage(harness.services)
    try:
        await outage.start()
        ready = await harness.client.get("/readyz")
        assert ready.status_code == 503, f"expected /readyz 503 while the database is down, got {ready.text}"
        assert ready.json()["database"].startswith("unavailable"), ready.text
        assert ready.json()["key_store"] == "ok", "expected the key store still reported usable"

        assert_unavailable(await harness.login(), "the password grant")
        assert_unavailable(await harness.refresh(before["refresh_token"]), "the refresh grant")
        assert_unavailable(await harness.me(before["access_token"]), "/users/me")
        revoke = await harness.client.post("/revoke", data={"token": before["refresh_token"]})
        assert_unavailable(revoke, "/revoke")
        introspect = await harness.client.post("/introspect", data={"token": "x"}, auth=("svc", "secret"))
        assert_unavailable(introspect, "/introspect")

        for path in (
            "/healthz",
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            "/metrics",
        ):
            response = await harness.client.get(path)
            assert response.status_code == 200, f"expected {path} to work without the database"
        assert outage.failures > 0, "expected the outage to have been hit"
    finally:
        outage.stop()
        outage.remove()

    ready = await harness.client.get("/readyz")
    assert ready.status_code == 200, f"expected readiness back with the database, got {ready.text}"
    # The refresh attempted during the outage spent nothing: the token still works, once.
    after = await harness.refresh(before["refresh_token"])
    assert after.status_code == 200, f"expected the refresh token unspent by the outage, got {after.text}"
    assert (await harness.me(after.json()["access_token"])).status_code == 200
    assert (await harness.login()).status_code == 200


async def test_a_refresh_cut_midway_changes_nothing(alice: AppHarness) -> None:
    """The connection dies after the token was marked spent, before its successor is stored."""
    harness = alice
    tokens = (await harness.login()).json()
    outage = Outage(harness.services)
    try:
        await outage.start(only="INSERT INTO refresh_tokens")
        assert_unavailable(await harness.refresh(tokens["refresh_token"]), "a refresh cut midway")
        assert outage.failures == 1, "expected exactly the successor's INSERT to fail"
    finally:
        outage.stop()
        outage.remove()
    again = await harness.refresh(tokens["refresh_token"])
    assert again.status_code == 200, f"expected the rolled-back refresh to leave the token live: {again.text}"
    replay = await harness.refresh(tokens["refresh_token"])
    assert replay.json()["error"] == "invalid_grant", "expected the token spent exactly once"


async def test_a_login_cut_midway_leaves_no_half_session(alice: AppHarness) -> None:
    harness = alice
    outage = Outage(harness.services)
    try:
        await outage.start(only="INSERT INTO refresh_tokens")
        assert_unavailable(await harness.login(), "a login cut midway")
    finally:
        outage.stop()
        outage.remove()
    user = await harness.services.users.by_username("alice")
    assert user is not None
    live = await harness.services.session_store.live_for_user(user.id, harness.clock.now())
    assert live == [], f"expected no session from the failed login, got {live}"
    assert (await harness.login()).status_code == 200


async def test_postgresql_backends_terminated_and_connections_refused(
    harness_factory: Callable[..., Any], postgres_url: str
) -> None:
    """The real thing on PostgreSQL: every backend killed and new connections refused, then allowed."""
    database_url = postgres_url
    harness: AppHarness = await harness_factory(database_url=database_url)
    await harness.add_user()
    before = (await harness.login()).json()
    name = make_url(database_url).database
    await pg_admin(
        database_url,
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        database="postgres",
    )
    try:
        ready = await harness.client.get("/readyz")
        assert ready.status_code == 503, f"expected /readyz 503 with PostgreSQL gone, got {ready.text}"
        assert_unavailable(await harness.login(), "the password grant on a lost PostgreSQL")
        assert_unavailable(await harness.refresh(before["refresh_token"]), "the refresh grant")
        assert_unavailable(await harness.me(before["access_token"]), "/users/me")
        assert (await harness.client.get("/.well-known/jwks.json")).status_code == 200
    finally:
        await pg_admin(database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true', database="postgres")
    ready = await harness.client.get("/readyz")
    assert ready.status_code == 200, f"expected readiness back with PostgreSQL, got {ready.text}"
    after = await harness.refresh(before["refresh_token"])
    assert after.status_code == 200, f"expected the refresh token unspent by the outage, got {after.text}"


async def test_postgresql_backends_ended_between_requests_cost_no_request(
    harness_factory: Callable[..., Any], postgres_url: str
) -> None:
    """A restart between requests: every backend ended while its connection sat in a pool, and
    connections allowed again at once. The pools see it at checkout and connect anew; no request
    fails. The threaded store's pool checks what the server sent instead of pinging
    (``store/sql/liveness.py``): without any check its next write and read answered 503."""
    harness: AppHarness = await harness_factory(database_url=postgres_url)
    await harness.add_user()
    tokens = (await harness.login()).json()
    assert (await harness.me(tokens["access_token"])).status_code == 200  # both pools hold connections
    await end_backends(postgres_url, "datname", make_url(postgres_url).database)
    refreshed = await harness.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, (
        f"expected the refresh served on new connections, got {refreshed.text}"
    )
    me = await harness.me(refreshed.json()["access_token"])
    assert me.status_code == 200, f"expected /users/me served on new connections, got {me.text}"
    assert (await harness.client.get("/readyz")).status_code == 200


# --- the key store ----------------------------------------------------------------------------------
class Monotonic:
    """The key manager's monotonic clock, moved by hand (the event loop keeps the real one)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    fake = Monotonic()
    monkeypatch.setattr(ring_module, "time", SimpleNamespace(monotonic=fake))
    return fake


async def test_unreadable_key_store_serves_the_last_set_then_503(
    harness_factory: Callable[..., Any],
    monotonic: Monotonic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness: AppHarness = await harness_factory(signing_alg="EdDSA")
    await harness.add_user()
    tokens = (await harness.login()).json()
    manifest = harness.settings.keys_dir / "keyset.json"
    good = manifest.read_bytes()
    caplog.set_level(logging.INFO)

    manifest.write_bytes(b"\x00 this is not a key set")
    monotonic.advance(2)
    await wait_for_key_poll(harness.services)  # the poller sees the change
    assert (await harness.login()).status_code == 200, "expected the last key set to keep serving"
    ready = await harness.client.get("/readyz")
    assert ready.status_code == 200, "expected readiness within the stale limit"
    assert ready.json()["key_store"].startswith("stale"), f"expected the stale store reported: {ready.text}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "key store" in r.getMessage()]
    assert len(errors) == 1, f"expected one clear error line about the key store, got {errors}"
    assert str(harness.settings.keys_dir) in errors[0].getMessage(), "expected the line to name the store"

    monotonic.advance(ring_module.STALE_LIMIT + 1)
    assert_unavailable(await harness.login(), "the password grant after the stale limit")
    assert_unavailable(await harness.refresh(tokens["refresh_token"]), "the refresh grant")
    assert_unavailable(await harness.me(tokens["access_token"]), "/users/me")
    assert_unavailable(await harness.client.get("/.well-known/jwks.json"), "the JWKS")
    ready = await harness.client.get("/readyz")
    assert ready.status_code == 503, f"expected /readyz 503 after the stale limit, got {ready.text}"
    assert ready.json()["key_store"].startswith("unavailable"), ready.text
    assert (await harness.client.get("/healthz")).status_code == 200

    manifest.write_bytes(good)
    monotonic.advance(2)
    await wait_for_key_poll(harness.services)
    assert (await harness.client.get("/readyz")).status_code == 200, "expected readiness back"
    refreshed = await harness.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, f"expected service back with the key store: {refreshed.text}"


async def test_key_store_read_errors_count_as_unreadable(
    harness_factory: Callable[..., Any], monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error (EIO, EACCES) reading the manifest behaves like garbage in it."""
    harness: AppHarness = await harness_factory(signing_alg="EdDSA")
    await harness.add_user()
    store = harness.services.key_watcher.store
    manifest = store.manifest
    real_read, real_stat = Path.read_bytes, store_file.os.stat

    def read_bytes(path: Path) -> bytes:
        if path == manifest:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_read(path)

    def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path) == manifest:
            raise OSError(errno.EIO, "Input/output error")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(store_file.os, "stat", stat)
    monotonic.advance(2)
    await wait_for_key_poll(harness.services)
    assert (await harness.login()).status_code == 200, "expected the last key set within the limit"
    monotonic.advance(ring_module.STALE_LIMIT + 1)
    assert_unavailable(await harness.login(), "the password grant with an unreadable store")
    monkeypatch.undo()
    monkeypatch.setattr(ring_module, "time", SimpleNamespace(monotonic=monotonic))
    monotonic.advance(2)
    await wait_for_key_poll(harness.services)
    assert (await harness.login()).status_code == 200, f"expected recovery of {store.describe()}"


async def test_missing_private_key_of_the_signing_key_is_503_not_another_key(
    harness_factory: Callable[..., Any], monotonic: Monotonic
) -> None:
    # Without a standby: the successor is a new key, and its file goes before the server reads it.
    harness: AppHarness = await harness_factory(signing_alg="EdDSA", key_standby=False)
    await harness.add_user()
    old_kid = harness.services.keys.signing_key().kid
    settings = harness.settings
    with harness.services.key_watcher._loading:  # no poll between the rotation and the unlink
        changes = rotate(
            harness.services.key_watcher.store, lifetimes(settings), harness.clock, "EdDSA", None, force=True
        )
        new_kid = next(c.kid for c in changes if c.action == "created")
        pem = settings.keys_dir / f"{new_kid}.pem"
        kept = pem.read_bytes()
        pem.unlink()
    harness.clock.advance(settings.key_prepublish + 5)  # the successor's turn to sign
    monotonic.advance(2)
    await wait_for_key_poll(harness.services)

    response = await harness.login()
    assert_unavailable(response, "a login when the signing key's private half is missing")
    assert (await harness.client.get("/readyz")).status_code == 503, (
        "expected not ready without a signing key"
    )

    pem.write_bytes(kept)
    os.chmod(pem, 0o600)
    await wait_for_key_poll(harness.services)  # a missing private file is looked for again
    response = await harness.login()
    assert response.status_code == 200, f"expected service back with the key file, got {response.text}"
    kid = kid_of(response.json()["access_token"])
    assert kid == new_kid != old_kid, "expected the timetable's key, never the retired one"


# --- rotating on a full disk ------------------------------------------------------------------------
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize(
    ("code", "message"), [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")]
)
async def test_rotation_on_a_full_disk_changes_nothing_and_the_server_keeps_signing(
    harness_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    monotonic: Monotonic,
    code: int,
    message: str,
) -> None:
    from authsvc.errors import KeyStoreError

    harness: AppHarness = await harness_factory(signing_alg="EdDSA")
    await harness.add_user()
    kid = harness.services.keys.signing_key().kid
    before = _snapshot(harness.settings.keys_dir)

    def full(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store_file, "atomic_write", full)
    with pytest.raises(KeyStoreError) as failure:
        rotate(
            harness.services.key_watcher.store,
            lifetimes(harness.settings),
            harness.clock,
            "EdDSA",
            None,
            force=True,
        )
    text = str(failure.value)
    assert "\n" not in text and message in text and "cannot write key store" in text, (
        f"expected one clear line naming the cause, got {text!r}"
    )
    assert _snapshot(harness.settings.keys_dir) == before, "expected the key store unchanged"
    monotonic.advance(2)
    response = await harness.login()
    assert response.status_code == 200, "expected the server to keep serving"
    assert kid_of(response.json()["access_token"]) == kid, "expected the same key to keep signing"


def test_cli_rotation_on_a_full_disk_is_one_line_exit_1(tmp_path: Path) -> None:
    from tests.support import server_env

    env = server_env(tmp_path, signing_alg="EdDSA")
    from authsvc.clock import SystemClock
    from authsvc.keys.rotation import create_first_key
    from authsvc.keys.store_file import FileKeyStore

    keys = Path(env["AUTHSVC_KEYS_DIR"])
    create_first_key(FileKeyStore(keys), "EdDSA", SystemClock(), None)
    before = _snapshot(keys)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import errno, os\n"
        "from authsvc.keys import store_file\n"
        "def _full(*a, **k):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "store_file.atomic_write = _full\n"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(inject), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [*authsvc_command(), "keys", "rotate", "--force"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr!r}"
    assert "No space left on device" in lines[0] and "Traceback" not in result.stderr
    assert _snapshot(keys) == before, "expected the key store unchanged"
    shutil.rmtree(inject)


async def test_outage_does_not_hang_requests(alice: AppHarness) -> None:
    """A database that refuses connections answers at once, not after a long timeout."""
    outage = Outage(alice.services)
    try:
        await outage.start()
        response = await asyncio.wait_for(alice.login(), timeout=5)
        assert_unavailable(response, "the password grant")
    finally:
        outage.stop()
        outage.remove()
