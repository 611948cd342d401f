"""The DPoP replay caches and server nonces: in memory, Redis (shared by instances), HMAC windows.

Redis tests need ``AUTHSVC_TEST_REDIS_URL``: skipped without it on a laptop,
failed without it when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from verifier_dpop_support import URL, DpopClient, redis_url
from verifier_support import FakeClock

from authsvc.verifier import (
    DpopRequest,
    InMemoryReplayCache,
    InvalidToken,
    NonceSource,
    RedisReplayCache,
    ReplayCache,
    RotatingNonces,
    SyncVerifier,
    Verifier,
)


# --- in memory ---------------------------------------------------------------------------------
async def test_in_memory_remembers_until_expiry(clock: FakeClock) -> None:
    cache = InMemoryReplayCache(clock=clock)
    assert isinstance(cache, ReplayCache)
    assert await cache.first_use("dpop:k1", "a", clock.now + 10)
    assert not await cache.first_use("dpop:k1", "a", clock.now + 10)
    assert await cache.first_use("dpop:k2", "a", clock.now + 10)  # per key: clients cannot collide
    clock.advance(10)
    assert not await cache.first_use("dpop:k1", "a", clock.now + 10)  # expires_at itself still counts
    clock.advance(0.5)
    assert await cache.first_use("dpop:k1", "a", clock.now + 10)
    assert len(cache) == 1  # the others expired and were dropped


async def test_in_memory_is_bounded(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    cache = InMemoryReplayCache(max_entries=100, clock=clock)
    for i in range(1000):
        assert await cache.first_use("dpop:k", str(i), clock.now + 60 + i)
        assert len(cache) <= 100
    assert not await cache.first_use("dpop:k", "999", clock.now + 60)  # the newest are kept
    assert await cache.first_use("dpop:k", "0", clock.now + 60)  # the soonest to expire went first
    assert sum("replay cache full" in r.message for r in caplog.records) == 1  # logged, not per request
    with pytest.raises(ValueError):
        InMemoryReplayCache(max_entries=0)


def test_in_memory_is_thread_safe(clock: FakeClock) -> None:
    cache = InMemoryReplayCache(clock=clock)
    accepted: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(500):
            if cache.record("dpop:k", str(i), clock.now + 60):
                accepted.append(str(i))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(accepted) == sorted(str(i) for i in range(500))  # each exactly once


# --- nonces ------------------------------------------------------------------------------------
def test_rotating_nonces(clock: FakeClock) -> None:
    nonces = RotatingNonces(b"s" * 32, window=60, clock=clock)
    assert isinstance(nonces, NonceSource)
    clock.now = 6000.0  # the start of a window
    first = nonces.current()
    assert nonces.valid(first) and first == nonces.current()
    clock.advance(59)
    assert nonces.current() == first
    clock.advance(1)
    second = nonces.current()
    assert second != first
    assert nonces.valid(first) and nonces.valid(second)  # the previous window's is still good
    clock.advance(60)
    assert not nonces.valid(first) and nonces.valid(second)
    for bad in (None, "", "x", first + "=", "é" * 43):
        assert not nonces.valid(bad)
    other = RotatingNonces(b"t" * 32, window=60, clock=clock)
    assert not other.valid(nonces.current())
    assert RotatingNonces(b"s" * 32, window=60, clock=clock).valid(nonces.current())  # another instance


@pytest.mark.parametrize(
    ("secret", "window"), [(b"short", 60), ("s" * 32, 60), (b"s" * 32, 0), (b"s" * 32, float("inf"))]
)
def test_rotating_nonces_arguments(secret: Any, window: float) -> None:
    with pytest.raises(ValueError):
        RotatingNonces(secret, window)


# --- Redis -------------------------------------------------------------------------------------
@pytest.fixture
def redis_prefix() -> str:
    return f"authsvc-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_clients() -> AsyncIterator[Callable[[], Any]]:
    url = redis_url()
    import redis.asyncio

    made: list[Any] = []

    def build() -> Any:
        client = redis.asyncio.Redis.from_url(url)
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
def sync_redis() -> Iterator[Any]:
    url = redis_url()
    import redis

    client = redis.Redis.from_url(url)
    yield client
    client.close()


def request(proof: str) -> DpopRequest:
    return DpopRequest(proof=proof, method="GET", url=URL)


async def test_redis_cache_shared_by_two_verifiers(
    make_verifier: Callable[..., Verifier],
    redis_clients: Callable[[], Any],
    redis_prefix: str,
    dpop_client: DpopClient,
    clock: FakeClock,
) -> None:
    shared = RedisReplayCache(redis_clients(), prefix=redis_prefix, clock=clock)
    first, second = make_verifier(dpop_replay=shared), make_verifier(dpop_replay=shared)
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    await first.verify(token, dpop=request(proof))
    with pytest.raises(InvalidToken) as caught:
        await second.verify(token, dpop=request(proof))
    assert (caught.value.code, caught.value.reason) == ("invalid_dpop_proof", "replayed_dpop_proof")
    await second.verify(token, dpop=request(dpop_client.proof(token)))  # a new proof is fine


async def test_redis_instances_race_for_one_proof(
    make_verifier: Callable[..., Verifier],
    redis_clients: Callable[[], Any],
    redis_prefix: str,
    dpop_client: DpopClient,
    clock: FakeClock,
) -> None:
    # Instances of a resource server: each its own verifier, cache object and connection.
    verifiers = [
        make_verifier(dpop_replay=RedisReplayCache(redis_clients(), prefix=redis_prefix, clock=clock))
        for _ in range(8)
    ]
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    for verifier in verifiers:  # warm the key caches, so the race is on the proof alone
        await verifier.verify(dpop_client.mint())
    results = await asyncio.gather(
        *(v.verify(token, dpop=request(proof)) for v in verifiers for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, dict) for r in results) == 1
    refusals = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(r, InvalidToken) and r.reason == "replayed_dpop_proof" for r in refusals)


async def test_redis_keys_expire(
    redis_clients: Callable[[], Any], redis_prefix: str, clock: FakeClock
) -> None:
    client = redis_clients()
    cache = RedisReplayCache(client, prefix=redis_prefix, margin=5, clock=clock)
    assert await cache.first_use("dpop:k", "j" * 256, clock.now + 60)
    assert not await cache.first_use("dpop:k", "j" * 256, clock.now + 60)
    ttl = await client.pttl(cache.key("dpop:k", "j" * 256))
    assert 60_000 < ttl <= 65_000
    assert cache.key("dpop:k", "j").startswith(redis_prefix)
    assert cache.key("a", "b:c") != cache.key("a:b", "c")


def test_redis_cache_with_the_sync_verifier(
    make_sync_verifier: Callable[..., SyncVerifier],
    sync_redis: Any,
    redis_prefix: str,
    dpop_client: DpopClient,
    clock: FakeClock,
) -> None:
    first = make_sync_verifier(dpop_replay=RedisReplayCache(sync_redis, prefix=redis_prefix, clock=clock))
    second = make_sync_verifier(dpop_replay=RedisReplayCache(sync_redis, prefix=redis_prefix, clock=clock))
    token = dpop_client.token()
    proof = dpop_client.proof(token)
    first.verify(token, dpop=request(proof))
    with pytest.raises(InvalidToken) as caught:
        second.verify(token, dpop=request(proof))
    assert caught.value.reason == "replayed_dpop_proof"


async def test_redis_down_fails_closed(
    make_verifier: Callable[..., Verifier], dpop_client: DpopClient, clock: FakeClock
) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        verifier = make_verifier(dpop_replay=RedisReplayCache(client, clock=clock))
        token = dpop_client.token()
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify(token, dpop=request(dpop_client.proof(token)))
        assert caught.value.reason == "replay_cache_unavailable"
    finally:
        await client.aclose()


def test_redis_cache_takes_a_client() -> None:
    with pytest.raises(TypeError):
        RedisReplayCache("redis://localhost")
