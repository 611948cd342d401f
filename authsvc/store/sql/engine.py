"""The async engine: URL normalisation, SQLite pragmas, migrations on start.

Engines never create a directory: which commands may create a SQLite database,
and with which mode, is decided before the first connection (``opening``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from authsvc.errors import ConfigError
from authsvc.store.sql.liveness import check_at_checkout

__all__ = [
    "async_url",
    "create_engine",
    "create_sync_engine",
    "is_sqlite",
    "sync_url",
    "write_lock",
    "write_transaction",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000


def async_url(database_url: str) -> tuple[URL, dict[str, Any]]:
    """The URL with its async driver chosen, and the connect arguments it needs."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError("AUTHSVC_DATABASE_URL: not a database URL") from None
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
    elif backend in ("postgresql", "postgres"):
        query = dict(url.query)
        sslmode = query.pop("sslmode", None)
        if sslmode is not None:
            if sslmode not in ("disable", "require", "prefer", "allow", "verify-ca", "verify-full"):
                raise ConfigError("AUTHSVC_DATABASE_URL: unsupported sslmode")
            connect_args["ssl"] = False if sslmode == "disable" else sslmode
        url = url.set(drivername="postgresql+asyncpg", query=query)
        connect_args.setdefault("timeout", 10)
        connect_args["command_timeout"] = 30
    else:
        raise ConfigError("AUTHSVC_DATABASE_URL: only sqlite and postgresql are supported")
    return url, connect_args


def sync_url(database_url: str) -> tuple[URL, dict[str, Any]]:
    """The same database through a synchronous driver (sqlite3, psycopg), for the key store."""
    url, connect_args = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite"), {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    sync_args: dict[str, Any] = {"connect_timeout": 10}
    ssl = connect_args.get("ssl")
    if ssl is not None:
        sync_args["sslmode"] = "disable" if ssl is False else ssl
    return url.set(drivername="postgresql+psycopg"), sync_args


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    """This process's writer lock for a SQLite database (None on PostgreSQL).

    Keyed by the async engine, and shared with the threaded session store
    (``authsvc.store.sql.threaded``) that writes to the same file.
    """
    if engine.dialect.name != "sqlite":
        return None
    lock = _WRITE_LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _WRITE_LOCKS[engine.sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` for a write; on SQLite one at a time per process.

    SQLite has one writer at a time. Pooled connections that contend for it
    wait in SQLite's busy handler, which sleeps in steps of up to 100 ms; an
    asyncio queue in front of it hands the lock over at once. Other processes
    on the same file still meet the busy handler (WAL keeps readers free).
    """
    lock = write_lock(engine)
    if lock is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with lock, engine.begin() as conn:
        yield conn


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before it is answered. In WAL mode NORMAL skips that fsync and
    # a power loss may roll back committed transactions: a spent refresh token unspent again
    # (replayable once, its successor unknown). Group commit pays the fsync once per batch.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


_PG_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_timeout": 10, "pool_pre_ping": True}


def create_engine(database_url: str) -> AsyncEngine:
    """An engine for the configured database; SQLite gets WAL and a busy timeout."""
    url, connect_args = async_url(database_url)
    if url.get_backend_name() == "sqlite":  # the file: store.sql.opening.connect_database
        engine = create_async_engine(url, connect_args=connect_args)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, connect_args=connect_args, **_PG_POOL)


def create_sync_engine(database_url: str) -> Engine:
    """The same database through its synchronous driver (sqlite3, psycopg), same pragmas and pool."""
    url, connect_args = sync_url(database_url)
    if url.get_backend_name() == "sqlite":
        # Connections are used by the store's worker threads, one thread at a time each.
        engine = sa_create_engine(url, connect_args={**connect_args, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Checked at checkout from what the server already sent (``liveness``): the pre-ping was a
    # round trip in every write batch.
    engine = sa_create_engine(url, connect_args=connect_args, **{**_PG_POOL, "pool_pre_ping": False})
    check_at_checkout(engine)
    return engine
