"""A small time-bounded cache for answers that may be a moment stale.

CONTRACT.md lets a revocation take up to a second to reach ``/users/me`` on
every process; caching the session and user lookups for half of that turns
the hot path's database round trips into a dict lookup.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

__all__ = ["TtlCache"]

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        now = time.monotonic()
        if len(self._data) >= self.max_entries:
            self._data = {k: e for k, e in self._data.items() if e[0] > now}
            if len(self._data) >= self.max_entries:
                self._data.clear()
        self._data[key] = (now + self.ttl, value)

    def clear(self) -> None:
        self._data.clear()
