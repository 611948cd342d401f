"""Ids that may be used once (DPoP proofs' ``jti``), remembered in the database for every instance.

One statement on the store's worker thread: an insert that does nothing on a
conflict and returns the row only when it inserted one (no exception, no
aborted transaction on PostgreSQL; psycopg reports no row count for it).
Expired ids are deleted at most once a second per process, by their
``expires_at`` index: a lookup never scans a key's history (a delete
filtered by owner did, and grew with the traffic). An id kept past its expiry
still refuses a replay, harmlessly: the proof it came with is too old by then.
Rows live in ``client_assertions`` beside client assertion ids, under an owner
that no client id can take (``dpop:<thumbprint>``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite

from authsvc.store.sql.prepared import Prepared
from authsvc.store.sql.tables import client_assertions
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["SqlUsedOnce"]

PRUNE_EVERY = 1.0


class SqlUsedOnce:
    def __init__(self, db: ThreadedDatabase) -> None:
        self.db = db
        self._pruned_at = 0.0

    async def __call__(self, owner: str, used_id: str, expires_at: float, now: float) -> bool:
        """Record ``used_id`` for ``owner`` until ``expires_at``; False if it was recorded before."""
        prune = now - self._pruned_at >= PRUNE_EVERY
        if prune:
            self._pruned_at = now
        key = hashlib.sha256(used_id.encode("utf-8", "surrogatepass")).hexdigest()

        def tx(conn: Connection) -> bool:
            if prune:
                conn.execute(delete(client_assertions).where(client_assertions.c.expires_at <= now))
            insert = _INSERT_POSTGRES if conn.dialect.name == "postgresql" else _INSERT_SQLITE
            return bool(insert.run(conn, {"p_owner": owner, "p_key": key, "p_expires_at": expires_at}))

        return await self.db.write(tx)


def _insert_once(dialect: Any) -> Prepared:
    """An insert that does nothing on a conflict and returns the row only when it inserted one."""
    return Prepared(
        dialect.insert(client_assertions)
        .values(client_id=bindparam("p_owner"), jti=bindparam("p_key"), expires_at=bindparam("p_expires_at"))
        .on_conflict_do_nothing()
        .returning(client_assertions.c.jti)
    )


# Built and compiled once (a DPoP request's one write), run on the driver's cursor.
_INSERT_POSTGRES = _insert_once(postgresql)
_INSERT_SQLITE = _insert_once(sqlite)
