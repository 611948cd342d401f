"""TtlCache.get_or_load: one load per key at a time, shared by every waiting caller.

Through the app: a cold cache hit by many requests at once costs one database
lookup, not one per request (the stampede that gave client_credentials a
135 ms p99 every time the half-second entries expired).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authsvc.ttl_cache import TtlCache
from tests.support import AppHarness


class _Loader:
    """An async loader that waits for a go signal and counts its calls."""

    def __init__(self, value: Any = "v", error: Exception | None = None) -> None:
        self.calls = 0
        self.go = asyncio.Event()
        self.value = value
        self.error = error

    async def __call__(self) -> Any:
        self.calls += 1
        await self.go.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def _started(tasks: list[asyncio.Task[Any]]) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = _Loader("answer")
    tasks = [asyncio.create_task(cache.get_or_load("k", load)) for _ in range(20)]
    await _started(tasks)
    load.go.set()
    assert await asyncio.gather(*tasks) == ["answer"] * 20
    assert load.calls == 1
    assert await cache.get_or_load("k", load) == "answer"  # now a hit
    assert load.calls == 1


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = _Loader(error=RuntimeError("database down"))
    tasks = [asyncio.create_task(cache.get_or_load("k", load)) for _ in range(5)]
    await _started(tasks)
    load.go.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    retry = _Loader("back")
    retry.go.set()
    assert await cache.get_or_load("k", retry) == "back"
    assert retry.calls == 1


async def test_none_is_returned_but_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = _Loader(None)
    load.go.set()
    assert await cache.get_or_load("k", load) is None
    assert await cache.get_or_load("k", load) is None
    assert load.calls == 2


async def test_clear_during_a_load_keeps_its_answer_out_of_the_cache() -> None:
    """A revocation clears the cache; an answer read before it must not be cached after it."""
    cache: TtlCache[str, bool] = TtlCache(60)
    stale = _Loader(True)
    first = asyncio.create_task(cache.get_or_load("k", stale))
    await _started([first])
    cache.clear()
    fresh = _Loader(False)
    second = asyncio.create_task(cache.get_or_load("k", fresh))  # a new load: the old one was dropped
    await _started([second])
    stale.go.set()
    fresh.go.set()
    assert await first is True
    assert await second is False
    assert cache.get("k") is False
    assert (stale.calls, fresh.calls) == (1, 1)


async def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    load = _Loader("v")
    leader = asyncio.create_task(cache.get_or_load("k", load))
    follower = asyncio.create_task(cache.get_or_load("k", load))
    await _started([leader, follower])
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    load.go.set()
    assert await follower == "v"
    assert cache.get("k") == "v"


async def test_a_cold_cache_under_concurrent_requests_costs_one_lookup_each(
    harness: AppHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = harness.services
    await harness.add_user()
    secret = await harness.add_service_client("svc-burst", scopes=frozenset({"read"}))
    access = (await harness.login()).json()["access_token"]
    counts = {"client": 0, "access": 0, "user": 0}

    def counted(name: str, fn: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            await asyncio.sleep(0.01)  # a slow database: every request arrives while it loads
            return await fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(services.clients.store, "get", counted("client", services.clients.store.get))
    monkeypatch.setattr(
        services.session_store, "access_allowed", counted("access", services.session_store.access_allowed)
    )
    monkeypatch.setattr(services.users, "by_id", counted("user", services.users.by_id))
    services.clients.forget()
    services.bearer.allowed.clear()
    services.recent_users.clear()

    tokens, me = await asyncio.gather(
        asyncio.gather(
            *(
                harness.client.post(
                    "/token", data={"grant_type": "client_credentials"}, auth=("svc-burst", secret)
                )
                for _ in range(16)
            )
        ),
        asyncio.gather(*(harness.me(access) for _ in range(16))),
    )
    assert [r.status_code for r in tokens] == [200] * 16
    assert [r.status_code for r in me] == [200] * 16
    assert counts == {"client": 1, "access": 1, "user": 1}
