"""Windowed failure counters in memory (one process only)."""

from __future__ import annotations

from collections.abc import Sequence

from authsvc.store.memory.tables import MemoryDatabase, Tables

__all__ = ["MemoryCounters"]


class MemoryCounters:
    """``authsvc.store.protocols.Counters`` in memory (one process only)."""

    backend = "memory"

    def __init__(self, db: MemoryDatabase | None = None) -> None:
        self.db = db or MemoryDatabase()

    async def reserve(self, limits: Sequence[tuple[str, int]], window: int, now: float) -> float:
        def tx(t: Tables) -> float:
            blocked = 0.0
            for key, limit in limits:
                count, until = _current(t, key, now)
                if count >= limit:
                    blocked = max(blocked, until - now)
            if blocked > 0:
                return blocked
            for key, _ in limits:
                _bump(t, key, window, now)
            return 0.0

        return await self.db.transaction(tx)

    async def add(self, key: str, window: int, now: float) -> None:
        await self.db.transaction(lambda t: _bump(t, key, window, now))

    async def release(self, keys: Sequence[str], now: float) -> None:
        def tx(t: Tables) -> None:
            for key in keys:
                count, until = _current(t, key, now)
                if count > 0:
                    t.counters[key] = (count - 1, until)

        await self.db.transaction(tx)

    async def clear(self, key: str) -> None:
        await self.db.transaction(lambda t: t.counters.pop(key, None))

    async def blocked_for(self, key: str, limit: int, now: float) -> float:
        count, until = _current(self.db.tables, key, now)
        return until - now if count >= limit else 0.0


def _current(t: Tables, key: str, now: float) -> tuple[int, float]:
    count, until = t.counters.get(key, (0, now))
    return (count, until) if until > now else (0, now)


def _bump(t: Tables, key: str, window: int, now: float) -> None:
    count, until = _current(t, key, now)
    t.counters[key] = (count + 1, until if count else now + window)
