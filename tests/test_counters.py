"""The login-limit counters on every store (SQLite, PostgreSQL, Redis): atomic, all or nothing.

The HTTP-level attacks (parallel bursts across processes and instances) are in
tests/test_trust_limits.py; these pin the mechanism they rely on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from authsvc.migrations import upgrade
from authsvc.store.protocols import Counters
from authsvc.store.redis import RedisCounters, RedisOrDatabase
from authsvc.store.sql.counters import SqlCounters
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.sessions import SqlSessionStore

NOW = 1_800_000_000.0
WINDOW = 900


def _key() -> str:
    return secrets.token_hex(32)  # each test its own keys: Redis is shared


async def _sql_counters(stack: AsyncExitStack, url: str) -> SqlCounters:
    engine = create_engine(url)
    stack.push_async_callback(engine.dispose)
    await upgrade(engine)
    store = SqlSessionStore.open(url, engine)
    stack.callback(store.close)
    return SqlCounters(store.db)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def backing_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """(kind, URL) of one backing store; skipped (locally) or failed (CI) like the other stores."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'counters.db'}"
    elif request.param == "postgresql":
        from tests.support import fresh_postgres_database

        url, drop = fresh_postgres_database()
        try:
            yield "sql", url
        finally:
            drop()
    else:
        url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
        if not url:
            pytest.skip("AUTHSVC_TEST_REDIS_URL is not set: Redis tests skipped")
        yield "redis", url


@pytest.fixture
async def make_counters(backing_store: tuple[str, str]) -> AsyncIterator[Callable[[], Any]]:
    """A factory of counter stores on one backing store: each call is like another process."""
    kind, url = backing_store
    async with AsyncExitStack() as stack:

        async def make() -> Counters:
            if kind != "redis":
                return await _sql_counters(stack, url)
            counters = RedisCounters(url)
            stack.push_async_callback(counters.aclose)
            if not await counters.ping():
                pytest.fail("AUTHSVC_TEST_REDIS_URL is set but Redis does not answer")
            return counters

        yield make


async def test_reserve_is_all_or_nothing(make_counters: Callable[[], Any]) -> None:
    counters: Counters = await make_counters()
    a, b = _key(), _key()
    assert await counters.reserve([(a, 2), (b, 1)], WINDOW, NOW) == 0
    blocked = await counters.reserve([(a, 2), (b, 1)], WINDOW, NOW)
    assert 0 < blocked <= WINDOW  # b is full: nothing was added to a either
    assert await counters.reserve([(a, 2)], WINDOW, NOW) == 0  # a had room for exactly one more
    assert await counters.reserve([(a, 2)], WINDOW, NOW) > 0
    assert await counters.blocked_for(a, 2, NOW) > 0
    assert await counters.blocked_for(_key(), 2, NOW) == 0


async def test_release_and_clear_give_room_back(make_counters: Callable[[], Any]) -> None:
    counters: Counters = await make_counters()
    k = _key()
    for _ in range(3):
        assert await counters.reserve([(k, 3)], WINDOW, NOW) == 0
    assert await counters.reserve([(k, 3)], WINDOW, NOW) > 0
    await counters.release([k], NOW)
    assert await counters.reserve([(k, 3)], WINDOW, NOW) == 0
    await counters.clear(k)
    for _ in range(3):
        assert await counters.reserve([(k, 3)], WINDOW, NOW) == 0
    await counters.add(k, WINDOW, NOW)  # a count without a reservation (a cheap failure)
    assert await counters.blocked_for(k, 4, NOW) > 0


async def test_a_parallel_burst_gets_exactly_the_limit(make_counters: Callable[[], Any]) -> None:
    """Twenty reservations at once, from two "processes" (separate pools and locks): three win."""
    first: Counters = await make_counters()
    second: Counters = await make_counters()
    keys = [(_key(), 3), (_key(), 30), (_key(), 100)]
    for _round in range(3):
        keys = [(_key(), limit) for _, limit in keys]
        results = await asyncio.gather(
            *((first, second)[i % 2].reserve(keys, WINDOW, NOW) for i in range(20))
        )
        assert sum(1 for r in results if r == 0) == 3, results
        assert all(r > 0 for r in results if r != 0)


async def test_reservations_and_releases_of_the_same_keys_at_once_never_deadlock(
    make_counters: Callable[[], Any],
) -> None:
    """Logins of one user from one address at once: each reserves and then (on success) releases
    the same counters. Every statement must take their row locks in one order; a release that
    locked them in scan order deadlocked against a reservation on PostgreSQL (503s at /token)."""
    stores: list[Counters] = [await make_counters() for _ in range(4)]
    for _round in range(10):
        keys = sorted([_key(), _key(), _key()], reverse=True)  # reserve sorts; a scan need not

        async def login(store: Counters, keys: list[str]) -> None:
            assert await store.reserve([(k, 1000) for k in keys], WINDOW, NOW) == 0
            await store.release(keys, NOW)

        await asyncio.gather(*(login(stores[i % len(stores)], keys) for i in range(16)))


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_a_window_ends_and_starts_afresh(engine: str, tmp_path: Any) -> None:
    """The database's windows follow the injected clock (Redis's are key TTLs in Redis's own time)."""
    async with AsyncExitStack() as stack:
        if engine == "sqlite":
            url = f"sqlite:///{tmp_path / 'window.db'}"
        else:
            from tests.support import fresh_postgres_database

            url, drop = await asyncio.to_thread(fresh_postgres_database)
            stack.push_async_callback(asyncio.to_thread, drop)  # it runs a loop of its own
        counters = await _sql_counters(stack, url)
        k = _key()
        assert await counters.reserve([(k, 1)], 60, NOW) == 0
        assert await counters.reserve([(k, 1)], 60, NOW + 10) == pytest.approx(50)
        assert await counters.reserve([(k, 1)], 60, NOW + 60) == 0  # a new window, counting from one
        assert await counters.prune(NOW + 200) >= 1
        assert await counters.blocked_for(k, 1, NOW + 200) == 0


async def test_redis_outage_falls_back_to_the_database(tmp_path: Any) -> None:
    async with AsyncExitStack() as stack:
        database = await _sql_counters(stack, f"sqlite:///{tmp_path / 'fallback.db'}")
        redis = RedisCounters("redis://127.0.0.1:1/0")  # nothing listens there
        stack.push_async_callback(redis.aclose)
        counters = RedisOrDatabase(redis, database)
        k = _key()
        assert await counters.reserve([(k, 1)], WINDOW, NOW) == 0
        assert counters.backend == "database (redis unreachable)"
        assert await counters.reserve([(k, 1)], WINDOW, NOW) > 0  # counted where it was kept
        assert await database.blocked_for(k, 1, NOW) > 0
        assert await counters.ping() is False
