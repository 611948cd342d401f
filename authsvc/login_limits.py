"""Failed-login limits per username and per client address (sliding window).

Counters live in memory, or in Redis when ``AUTHSVC_REDIS_URL`` is set so
that every instance shares them. If Redis cannot be reached, this process's
own counters take over (logged once, retried every 30 s): an outage of the
counter store must not lock every user out, nor let the service fall over.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from authsvc.errors import LoginRateLimited

__all__ = ["LoginLimiter", "client_address"]

log = logging.getLogger("authsvc")

RETRY_REDIS_AFTER = 30.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, or behind trusted proxies the first untrusted hop."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, trusted):
            return hop if _is_ip(hop) else address
    return address


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class LoginLimiter:
    def __init__(self, max_per_user: int, max_per_address: int, window: int, redis_url: str | None) -> None:
        self._user = RateLimitItemPerSecond(max_per_user, window)
        self._address = RateLimitItemPerSecond(max_per_address, window)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis_url = redis_url
        self._redis: MovingWindowRateLimiter | None = None
        self._pool: Any = None
        self._redis_down_since: float | None = None

    @property
    def backend(self) -> str:
        if self._redis_url is None:
            return "memory"
        return "redis" if self._redis_down_since is None else "memory (redis unreachable)"

    def _limiter(self) -> MovingWindowRateLimiter:
        if self._redis_url is None:
            return self._memory
        down = self._redis_down_since
        if down is not None and time.monotonic() - down < RETRY_REDIS_AFTER:
            return self._memory
        if self._redis is None:
            import redis.asyncio

            url = self._redis_url.removeprefix("async+")
            self._pool = redis.asyncio.ConnectionPool.from_url(
                url, socket_timeout=1, socket_connect_timeout=1
            )
            storage: Storage = RedisStorage(
                "async+" + url, implementation="redispy", wrap_exceptions=True, connection_pool=self._pool
            )
            self._redis = MovingWindowRateLimiter(storage)
        return self._redis

    async def aclose(self) -> None:
        """Close the Redis connections (the server's lifespan end)."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def _call(self, method: str, *args: object) -> object:
        limiter = self._limiter()
        try:
            result = await getattr(limiter, method)(*args)
        except Exception as exc:
            if limiter is self._memory:
                raise
            if self._redis_down_since is None:
                log.error(
                    "redis unreachable (%s); login limits fall back to per-process counters",
                    type(exc).__name__,
                )
            self._redis_down_since = time.monotonic()
            return await getattr(self._memory, method)(*args)
        if limiter is not self._memory and self._redis_down_since is not None:
            log.warning("redis reachable again; login limits are shared")
            self._redis_down_since = None
        return result

    async def check(self, username: str, address: str) -> None:
        """Raise LoginRateLimited if either counter is full."""
        for item, key in ((self._user, "u:" + username), (self._address, "a:" + address)):
            if not await self._call("test", item, "authsvc-login", key):
                stats = await self._call("get_window_stats", item, "authsvc-login", key)
                retry = int(stats.reset_time - time.time()) + 1  # type: ignore[attr-defined]
                raise LoginRateLimited(retry, detail=f"login limit ({key[0]})")

    async def failed(self, username: str, address: str) -> None:
        await self._call("hit", self._user, "authsvc-login", "u:" + username)
        await self._call("hit", self._address, "authsvc-login", "a:" + address)

    async def succeeded(self, username: str) -> None:
        await self._call("clear", self._user, "authsvc-login", "u:" + username)

    async def ping(self) -> bool | None:
        """Redis reachability for /readyz (None: not configured)."""
        if self._redis_url is None:
            return None
        limiter = self._limiter()
        if limiter is self._memory:
            return False
        try:
            return bool(await limiter.storage.check())
        except Exception:
            return False
