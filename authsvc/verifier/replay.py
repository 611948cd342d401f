"""Where a resource server remembers the DPoP proofs it accepted (RFC 9449 §11.1).

A proof names itself by ``jti``; the same proof presented twice while its
``iat`` is still acceptable is a replay. The verifier asks a :class:`ReplayCache`
whether a ``(owner, jti)`` pair is new and tells it how long the answer matters
(``expires_at``, epoch seconds on the verifier's clock); the owner is the proof
key's thumbprint (``authsvc.dpop.replay_key``), so clients cannot collide.

- :class:`InMemoryReplayCache` (the default): one process; bounded, entries
  dropped once expired. When full of live entries it forgets the one that
  expires first (and logs it), so size it above requests per window.
- :class:`RedisReplayCache`: every instance of a resource server shares one
  Redis; ``SET key NX PX ttl`` decides atomically, so the same proof sent to two
  instances at once is accepted by exactly one. It takes a client the caller
  built (``redis.asyncio.Redis`` for :class:`Verifier`, ``redis.Redis`` for
  :class:`SyncVerifier`); redis is never imported here.

A cache that cannot answer raises; the verifier then refuses the request as
temporarily unavailable (it fails closed, never accepting an unchecked proof).
"""

from __future__ import annotations

import hashlib
import heapq
import inspect
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

__all__ = ["InMemoryReplayCache", "RedisReplayCache", "ReplayCache"]

logger = logging.getLogger("authsvc.verifier")

_EVICTION_LOG_INTERVAL: Final = 60.0


@runtime_checkable
class ReplayCache(Protocol):
    """Remembers proof ids; ``first_use`` is True exactly once per (owner, jti) until expiry."""

    async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
        """Record the pair; True if it was not already recorded and unexpired."""
        ...


class InMemoryReplayCache:
    """A bounded, expiring replay cache for one process (thread-safe).

    ``first_use`` never suspends, so :class:`~authsvc.verifier.SyncVerifier`
    can use it from any thread. ``clock`` must be the verifier's clock (tests
    pass a fake one; the default is ``time.time``).
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] | None = None) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive integer")
        self.max_entries = max_entries
        self._clock = clock if clock is not None else time.time
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []  # the same entries, soonest expiry first
        self._last_eviction_log = -math.inf

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
        return self.record(owner, jti, expires_at)

    def record(self, owner: str, jti: str, expires_at: float) -> bool:
        """``first_use`` without a coroutine."""
        key = (owner, jti)
        now = float(self._clock())
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                return False
            while len(self._expiry) >= self.max_entries:
                self._evict(now)
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def _purge(self, now: float) -> None:
        # An entry matters while a proof with its iat can still be accepted: up to and
        # including expires_at.
        while self._heap and self._heap[0][0] < now:
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]

    def _evict(self, now: float) -> None:
        _, key = heapq.heappop(self._heap)
        del self._expiry[key]
        if now - self._last_eviction_log >= _EVICTION_LOG_INTERVAL:
            self._last_eviction_log = now
            logger.warning(
                "DPoP replay cache full (%d live proofs): forgetting the oldest; raise max_entries",
                self.max_entries,
            )


class RedisReplayCache:
    """A replay cache shared through Redis: ``SET <prefix><hash> 1 NX PX <ttl>``.

    ``client``: a ``redis.asyncio.Redis`` (or a blocking ``redis.Redis`` for the
    sync verifier). The key is a hash of (owner, jti), so any jti fits; the TTL
    is the time left to ``expires_at`` on ``clock`` plus ``margin`` seconds for
    clock differences between instances.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "authsvc:verifier:dpop-jti:",
        margin: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not callable(getattr(client, "set", None)):
            raise TypeError("client must be a redis client (redis.asyncio.Redis or redis.Redis)")
        if not isinstance(margin, int | float) or not margin >= 0 or math.isinf(margin):
            raise ValueError("margin must be a finite number >= 0")
        self._client = client
        self.prefix = prefix
        self.margin = float(margin)
        self._clock = clock if clock is not None else time.time

    def key(self, owner: str, jti: str) -> str:
        """The Redis key remembering (owner, jti)."""
        digest = hashlib.sha256(json.dumps([owner, jti]).encode()).hexdigest()
        return self.prefix + digest

    async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
        ttl = expires_at - float(self._clock()) + self.margin
        ttl_ms = max(1, math.ceil(ttl * 1000))
        result = self._client.set(self.key(owner, jti), b"1", nx=True, px=ttl_ms)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)
