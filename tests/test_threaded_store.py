"""The session store runs its transactions on worker threads: what that must and must not change.

* A refresh waiting for the database (a lock held elsewhere) waits on its worker
  thread: the event loop keeps answering other requests meanwhile.
* SQLite writers of one process, async (users) and threaded (sessions), queue on
  one lock and all succeed.
* Shutting the services down stops the threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from authsvc.store.sql.engine import create_sync_engine
from tests.support import AppHarness, claims_of


class _HeldLock:
    """Another connection holding the lock a refresh needs, until released.

    SQLite: the database's write lock (BEGIN IMMEDIATE). PostgreSQL: the refresh
    token's row (SELECT ... FOR UPDATE).
    """

    def __init__(self, database_url: str, jti: str) -> None:
        self.url = database_url
        self.jti = jti
        self._release = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self.error: BaseException | None = None

    def _hold(self) -> None:
        try:
            if make_url(self.url).get_backend_name() == "sqlite":
                conn = sqlite3.connect(make_url(self.url).database, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                self._held.set()
                self._release.wait(30)
                conn.execute("ROLLBACK")
                conn.close()
                return
            engine = create_sync_engine(self.url)
            with engine.begin() as conn:
                conn.execute(
                    text("SELECT jti FROM refresh_tokens WHERE jti = :jti FOR UPDATE"), {"jti": self.jti}
                )
                self._held.set()
                self._release.wait(30)
            engine.dispose()
        except BaseException as exc:  # reported by the test
            self.error = exc
            self._held.set()

    def __enter__(self) -> _HeldLock:
        self._thread.start()
        assert self._held.wait(10), "the lock holder never started"
        assert self.error is None, f"could not take the lock: {self.error!r}"
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)

    def __exit__(self, *_exc: object) -> None:
        self.release()


async def test_a_refresh_waiting_for_the_database_does_not_stop_the_loop(db_harness: AppHarness) -> None:
    harness = db_harness
    await harness.add_user()
    first = (await harness.login()).json()
    with _HeldLock(harness.settings.database_url, claims_of(first["refresh_token"])["jti"]) as held:
        pending = asyncio.create_task(harness.refresh(first["refresh_token"]))
        for _ in range(50):  # let it reach the database and block there
            await asyncio.sleep(0.01)
        assert not pending.done(), "expected the refresh to wait for the held lock"
        # The loop is free: other requests are answered while the refresh waits.
        health = await asyncio.wait_for(harness.client.get("/healthz"), timeout=10)
        assert health.status_code == 200
        jwks = await asyncio.wait_for(harness.client.get("/.well-known/jwks.json"), timeout=10)
        assert jwks.status_code == 200
        assert not pending.done(), "expected the refresh still waiting while the lock is held"
        held.release()
        response = await asyncio.wait_for(pending, timeout=20)
    assert response.status_code == 200, response.text
    assert (await harness.me(response.json()["access_token"])).status_code == 200


async def test_async_and_threaded_writers_share_one_queue_on_sqlite(harness: AppHarness) -> None:
    """Logins and refreshes (threaded) interleaved with user writes (async), all on one SQLite file."""
    await harness.add_user()
    tokens = [(await harness.login()).json()["refresh_token"] for _ in range(8)]

    async def chain(token: str) -> int:
        ok = 0
        for _ in range(5):
            response = await harness.refresh(token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
            ok += 1
        return ok

    async def user_writes() -> int:
        for i in range(20):
            await harness.services.users.add(f"user{i}", "x", harness.clock.now(), username_key=f"user{i}")
            await harness.services.users.set_disabled(f"user{i}", True, harness.clock.now())
        return 20

    results = await asyncio.gather(*(chain(t) for t in tokens), user_writes())
    assert results == [5] * 8 + [20]


async def test_closing_the_services_stops_the_store_threads(harness_factory: Any) -> None:
    from authsvc.runtime import Services
    from tests.support import make_settings

    harness = await harness_factory()
    await harness.add_user()
    assert (await harness.login()).status_code == 200
    settings = make_settings(harness.settings.keys_dir.parent, database_url=harness.settings.database_url)
    before = set(threading.enumerate())
    services = await Services.start(settings, harness.clock)
    assert await services.session_store.get("s_none") is None  # its threads are running now
    own = [t for t in set(threading.enumerate()) - before if t.name.startswith("authsvc-db")]
    assert own, "expected the second services' own worker threads"
    await services.close()
    alive = [t for t in own if t.is_alive()]
    assert alive == [], f"expected the store's threads stopped, still running: {alive}"


@pytest.mark.parametrize("grace", [0, 10])
async def test_a_cancelled_refresh_leaves_the_family_usable(harness_factory: Any, grace: int) -> None:
    """A caller that goes away mid-refresh: the transaction still ends whole, one way or the other."""
    harness = await harness_factory(refresh_reuse_grace=grace)
    await harness.add_user()
    first = (await harness.login()).json()
    task = asyncio.create_task(harness.refresh(first["refresh_token"]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)  # a transaction already on its thread finishes there
    again = await harness.refresh(first["refresh_token"])
    if again.status_code == 200:  # the cancelled one never reached the database, or grace replays it
        assert (await harness.me(again.json()["access_token"])).status_code == 200
    else:  # it was spent by the cancelled call: a replay, the whole family ends (grace 0)
        assert again.json()["error"] == "invalid_grant"
        assert grace == 0
