"""Where the failure counters of the login limits (and the ids that may be used only once, such
as DPoP proofs' ``jti``) live: Redis, else the database.

Ids used once are the exception: with Redis set they live in Redis alone, and
an id it cannot record is refused (``RedisOnce``).

Both stores give the same atomic operations (``Counters``). With
``AUTHSVC_REDIS_URL`` set, counters live in Redis and a reservation is one Lua
script (check every counter, then increment every counter, or nothing). If
Redis cannot be reached, the database takes over (logged once, Redis retried
every ``RETRY_REDIS_AFTER`` seconds): the limits still hold across processes
and instances, only slower. Counts made in one store are not copied to the
other; a switch starts the window afresh there.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from authsvc.errors import TemporarilyUnavailable
from authsvc.store.protocols import Counters
from authsvc.store.sql.counters import SqlCounters

__all__ = ["RedisCounters", "RedisOnce", "RedisOrDatabase"]

log = logging.getLogger("authsvc")

RETRY_REDIS_AFTER = 30.0
T = TypeVar("T")


# KEYS: the counters. ARGV[1]: the window in ms; ARGV[1 + i]: the limit of KEYS[i].
# Returns 0 when every counter was incremented, else the ms until the fullest has room.
_RESERVE = """
local blocked = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[1]) end
    if ttl > blocked then blocked = ttl end
  end
end
if blocked > 0 then return blocked end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
"""
_ADD = """
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 0
"""
_RELEASE = """
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 0 then redis.call('DECR', key) end
end
return 0
"""
_PEEK = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"
_PREFIX = "{authsvc-limits}:"  # one hash slot: the scripts touch several keys at once
_ONCE_PREFIX = "authsvc-once:"


class RedisCounters:
    """Counters as Redis keys with a TTL of the window (the window starts at the first count)."""

    backend = "redis"

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self.client = redis.asyncio.Redis.from_url(
            url.removeprefix("async+"), socket_timeout=1, socket_connect_timeout=1
        )
        self._reserve = self.client.register_script(_RESERVE)
        self._add = self.client.register_script(_ADD)
        self._release = self.client.register_script(_RELEASE)
        self._peek = self.client.register_script(_PEEK)

    async def reserve(self, limits: Sequence[tuple[str, int]], window: int, now: float) -> float:
        keys = [_PREFIX + key for key, _ in limits]
        blocked_ms = await self._reserve(keys=keys, args=[window * 1000, *(limit for _, limit in limits)])
        return int(blocked_ms) / 1000

    async def add(self, key: str, window: int, now: float) -> None:
        await self._add(keys=[_PREFIX + key], args=[window * 1000])

    async def release(self, keys: Sequence[str], now: float) -> None:
        await self._release(keys=[_PREFIX + key for key in keys])

    async def clear(self, key: str) -> None:
        await self.client.delete(_PREFIX + key)

    async def blocked_for(self, key: str, limit: int, now: float) -> float:
        count, ttl_ms = await self._peek(keys=[_PREFIX + key])
        if count is None or int(count) < limit or int(ttl_ms) <= 0:
            return 0.0
        return int(ttl_ms) / 1000

    async def first_use(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; False if it is recorded already (SET NX)."""
        done = await self.client.set(_ONCE_PREFIX + key, b"1", nx=True, px=max(1, int(ttl * 1000)))
        return bool(done)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self.client.aclose()


class RedisOrDatabase:
    """Redis while it answers, the database while it does not."""

    def __init__(self, redis: RedisCounters, database: SqlCounters) -> None:
        self.redis = redis
        self.database = database
        self._down_since: float | None = None

    @property
    def backend(self) -> str:
        return "redis" if self._down_since is None else "database (redis unreachable)"

    async def _call(self, operation: Callable[[Counters], Awaitable[T]]) -> T:
        down = self._down_since
        if down is not None and time.monotonic() - down < RETRY_REDIS_AFTER:
            return await operation(self.database)
        try:
            result = await operation(self.redis)
        except Exception as exc:  # any Redis failure: the database keeps the limits
            if self._down_since is None:
                log.error("redis unreachable (%s); login limits are kept in the database", type(exc).__name__)
            self._down_since = time.monotonic()
            return await operation(self.database)
        if down is not None:
            log.warning("redis reachable again; login limits are kept in redis")
            self._down_since = None
        return result

    async def reserve(self, limits: Sequence[tuple[str, int]], window: int, now: float) -> float:
        return await self._call(lambda c: c.reserve(limits, window, now))

    async def add(self, key: str, window: int, now: float) -> None:
        await self._call(lambda c: c.add(key, window, now))

    async def release(self, keys: Sequence[str], now: float) -> None:
        await self._call(lambda c: c.release(keys, now))

    async def clear(self, key: str) -> None:
        await self._call(lambda c: c.clear(key))

    async def blocked_for(self, key: str, limit: int, now: float) -> float:
        return await self._call(lambda c: c.blocked_for(key, limit, now))

    async def ping(self) -> bool:
        return await self.redis.ping()

    async def aclose(self) -> None:
        await self.redis.aclose()


class RedisOnce:
    """Ids used once (``(owner, id, remember until, now) -> first time?``), in Redis alone.

    Redis is the one place every instance looks, so an id it cannot record is
    refused (``TemporarilyUnavailable``, 503), never recorded elsewhere. The login
    limits fall back to the database because a count split between two stores
    only loosens a limit for a while; an id recorded in the database would be
    accepted again by every process still on Redis, which never looks there
    (``tests/test_dpop_redis_partition.py``).
    """

    def __init__(self, redis: RedisCounters) -> None:
        self.redis = redis
        self._down = False

    async def __call__(self, owner: str, used_id: str, expires_at: float, now: float) -> bool:
        key = hashlib.sha256(f"{owner}\x00{used_id}".encode("utf-8", "surrogatepass")).hexdigest()
        try:
            first = await self.redis.first_use(key, expires_at - now)
        except Exception as exc:  # any Redis failure: refuse, and say so once per outage
            if not self._down:
                log.error("redis unreachable (%s); DPoP proofs refused until it answers", type(exc).__name__)
            self._down = True
            raise TemporarilyUnavailable(detail="the replay store (Redis) did not answer") from None
        if self._down:
            log.warning("redis answers again; DPoP proofs are accepted")
        self._down = False
        return first
