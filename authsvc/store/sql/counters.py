"""Windowed failure counters in the database, shared by every process and instance.

Each counter is one row: a count and the end of its window (a fixed window that
starts with the first count). Every change is one upsert whose result the
database computes under its row lock (PostgreSQL) or write lock (SQLite), so no
two processes can both see room for the last attempt. A reservation of several
counters is all or nothing: the transaction adds one to each, and rolls back
if any went over its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from authsvc.store.sql.tables import login_counters
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["SqlCounters"]

_C = login_counters.c


def _upsert(dialect_insert: Callable[..., Any]) -> Any:
    """Add one; a counter whose window ended starts a new window at one."""
    statement = dialect_insert(login_counters).values(
        key=bindparam("p_key"), count=1, expires_at=bindparam("p_expires")
    )
    expired = _C.expires_at <= bindparam("p_now")
    return statement.on_conflict_do_update(
        index_elements=[_C.key],
        set_={
            "count": case((expired, 1), else_=_C.count + 1),
            "expires_at": case((expired, bindparam("p_expires")), else_=_C.expires_at),
        },
    ).returning(_C.count, _C.expires_at)


_UPSERT = {"sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}
_RELEASE = (
    update(login_counters)
    .where(_C.key == bindparam("p_key"), _C.count > 0, _C.expires_at > bindparam("p_now"))
    .values(count=_C.count - 1)
)
_CLEAR = delete(login_counters).where(_C.key == bindparam("p_key"))
_READ = select(_C.count, _C.expires_at).where(_C.key == bindparam("p_key"))


class _Blocked(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class SqlCounters:
    """The ``login_counters`` table, through the session store's worker threads."""

    backend = "database"

    def __init__(self, db: ThreadedDatabase) -> None:
        self.db = db
        self._upsert = _UPSERT[db.engine.dialect.name]

    def _add(self, conn: Connection, key: str, window: int, now: float) -> tuple[int, float]:
        count, expires_at = conn.execute(
            self._upsert, {"p_key": key, "p_now": now, "p_expires": now + window}
        ).one()
        return int(count), float(expires_at)

    async def reserve(self, limits: Sequence[tuple[str, int]], window: int, now: float) -> float:
        """0 when one was added to every counter; else the seconds until all have room (nothing added)."""

        def tx(conn: Connection) -> float:
            blocked = 0.0
            for key, limit in sorted(limits):  # one lock order everywhere: no deadlocks
                count, expires_at = self._add(conn, key, window, now)
                if count > limit:
                    blocked = max(blocked, expires_at - now)
            if blocked > 0:
                raise _Blocked(blocked)  # rolls every increment back
            return 0.0

        try:
            return await self.db.write(tx)
        except _Blocked as full:
            return full.seconds

    async def add(self, key: str, window: int, now: float) -> None:
        await self.db.write(lambda conn: self._add(conn, key, window, now))

    async def release(self, keys: Sequence[str], now: float) -> None:
        """One less on each counter, row by row in the order ``reserve`` locks them: one
        ``UPDATE ... IN (...)`` locks in scan order and deadlocks against a reservation."""

        def tx(conn: Connection) -> None:
            for key in sorted(keys):
                _run(conn, _RELEASE, {"p_key": key, "p_now": now})

        await self.db.write(tx)

    async def clear(self, key: str) -> None:
        await self.db.write(lambda conn: _run(conn, _CLEAR, {"p_key": key}))

    async def blocked_for(self, key: str, limit: int, now: float) -> float:
        """Seconds until ``key`` has room again (0: it has room now)."""
        row = await self.db.read(lambda conn: conn.execute(_READ, {"p_key": key}).first())
        if row is None:
            return 0.0
        count, expires_at = row
        return float(expires_at - now) if count >= limit and expires_at > now else 0.0

    async def prune(self, now: float) -> int:
        """Delete counters whose window has ended."""
        statement = delete(login_counters).where(_C.expires_at <= now)
        return await self.db.write(lambda conn: _run(conn, statement, {}))


def _run(conn: Connection, statement: Any, params: dict[str, Any]) -> int:
    """Execute ``statement``; how many rows it touched."""
    return int(conn.execute(statement, params).rowcount)
