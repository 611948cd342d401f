"""Growth's filler: live refresh-token rows (one session each), written in bulk from the table metadata.

The tables are ``authsvc.store.sql.tables``, the current head of the schema, so
the filler cannot drift from it: the statements are built from the ``Table``
objects, and a column that needs a value the filler does not give (NOT NULL or
with a Python-side default, and no server default) stops the run at once,
naming the column. SQLite gets an executemany
``INSERT``, PostgreSQL ``COPY``, both with the table and column names taken from
the ``Table`` (the DB-API directly: Core's per-row parameter handling would make
the million-row fill half as slow again).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, create_engine, delete, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from authsvc.store.sql.engine import sync_url
from authsvc.store.sql.tables import refresh_tokens, sessions, users
from authsvc.usernames import login_name
from benchkit.config import SCOPES

__all__ = ["SESSION_COLUMNS", "TOKEN_COLUMNS", "FillerDb", "missing_columns"]

_DAY = 86400.0


def missing_columns(table: Table, names: Iterable[str]) -> list[str]:
    """Columns a raw row with only ``names`` would get wrong: NOT NULL, or with a default that only
    SQLAlchemy applies (``default=``), and no server default."""
    given = set(names)
    unknown = given - set(table.c.keys())
    if unknown:
        raise RuntimeError(f"filler: {table.name} has no column {', '.join(sorted(unknown))}")
    return [
        column.name
        for column in table.c
        if column.name not in given
        and column.server_default is None
        and (not column.nullable or column.default is not None)
    ]


#: What a filler row holds, by column name; every other column gets its server default or NULL.
SESSION_COLUMNS = ("id", "user_id", "client_id", "scope", "created_at", "expires_at")
TOKEN_COLUMNS = ("jti", "session_id", "client_id", "kid", "issued_at", "expires_at")


class FillerDb:
    """Inserts filler sessions and refresh tokens up to a row count; deletes them again (PostgreSQL)."""

    BATCH = 50_000

    def __init__(self, database_url: str, prefix: str) -> None:
        for table, names in ((sessions, SESSION_COLUMNS), (refresh_tokens, TOKEN_COLUMNS)):
            absent = missing_columns(table, names)
            if absent:
                raise RuntimeError(f"filler: no value for {table.name}.{', '.join(absent)}")
        url, connect_args = sync_url(database_url)
        self.sqlite = url.get_backend_name() == "sqlite"
        self.engine: Engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
        if self.sqlite:
            event.listen(self.engine, "connect", _bulk_pragmas)
        self.prefix = prefix

    def fill_to(self, rows: int, username: str, client_id: str, kid: str) -> int:
        """Live refresh tokens until ``refresh_tokens`` holds ``rows``; returns how many were added."""
        with self.engine.connect() as conn:
            with conn.begin():
                have = int(conn.scalar(select(func.count()).select_from(refresh_tokens)) or 0)
                stored = login_name(username) or username  # authsvc keeps the PRECIS-mapped name
                user_id = conn.scalar(select(users.c.id).where(users.c.username == stored))
            if user_id is None:
                raise RuntimeError(f"filler: no user {username!r} in the database")
            missing = max(0, rows - have)
            now = time.time()
            done = 0
            while done < missing:
                batch_sessions: list[tuple[object, ...]] = []
                batch_tokens: list[tuple[object, ...]] = []
                for _ in range(min(self.BATCH, missing - done)):
                    sid = self.prefix + secrets.token_urlsafe(12)
                    batch_sessions.append((sid, user_id, client_id, SCOPES, now, now + 90 * _DAY))
                    batch_tokens.append(
                        (secrets.token_urlsafe(18), sid, client_id, kid, now, now + 14 * _DAY)
                    )
                with conn.begin():  # one transaction per batch, committed at the block's end
                    self._write(conn, sessions, SESSION_COLUMNS, batch_sessions)
                    self._write(conn, refresh_tokens, TOKEN_COLUMNS, batch_tokens)
                done += len(batch_sessions)
            return missing

    def _write(
        self, conn: Connection, table: Table, names: tuple[str, ...], rows: list[tuple[object, ...]]
    ) -> None:
        """``INSERT`` (executemany) on SQLite, ``COPY`` on PostgreSQL; names quoted by the dialect."""
        preparer = conn.dialect.identifier_preparer
        target = (
            f"{preparer.format_table(table)} ({', '.join(preparer.format_column(table.c[n]) for n in names)})"
        )
        if self.sqlite:
            conn.exec_driver_sql(f"INSERT INTO {target} VALUES ({', '.join('?' * len(names))})", rows)
            return
        driver = conn.connection.driver_connection  # psycopg's Connection: COPY is not in the DB-API
        assert driver is not None
        with driver.cursor().copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def cleanup(self) -> None:
        """PostgreSQL only: the scratch database keeps no filler rows (SQLite files go with the temp dir)."""
        if self.sqlite:
            return
        with self.engine.begin() as conn:
            conn.execute(
                delete(refresh_tokens).where(
                    refresh_tokens.c.session_id.startswith(self.prefix, autoescape=True)
                )
            )
            conn.execute(delete(sessions).where(sessions.c.id.startswith(self.prefix, autoescape=True)))

    def close(self) -> None:
        self.engine.dispose()


def _bulk_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite for a bulk load: no fsync per commit, a large page cache (the data is throw-away)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.close()
