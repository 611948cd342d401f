"""The database a process works on: opened, its schema brought to head or checked.

SQLite is migrated in place when a process opens it (one file, one release);
PostgreSQL is migrated only by ``authsvc db upgrade``, and a process refuses to
start on an old schema with one line saying so.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.errors import ConfigError
from authsvc.migrations import current_revision, head_revision, upgrade
from authsvc.settings import AuthSettings
from authsvc.store.sql.engine import is_sqlite
from authsvc.store.sql.opening import connect_database
from authsvc.store.sql.sessions import SqlSessionStore
from authsvc.store.sql.users import SqlUserStore

__all__ = ["command_stores", "open_database"]


async def open_database(settings: AuthSettings, *, create: bool = False) -> AsyncEngine:
    """The engine, with the schema brought to head (SQLite) or checked (PostgreSQL).

    Only the server creates a missing SQLite database (``create``, made 0600);
    for every command a missing one is an error (see ``store.sql.opening``).
    """
    engine = await connect_database(settings.database_url, create=create)
    if is_sqlite(engine):
        await upgrade(engine)
    elif await current_revision(engine) != head_revision():
        await engine.dispose()
        raise ConfigError("AUTHSVC_DATABASE_URL: the schema is not current; run `authsvc db upgrade`")
    return engine


@contextlib.asynccontextmanager
async def command_stores(settings: AuthSettings) -> AsyncIterator[tuple[SqlUserStore, SqlSessionStore]]:
    """The user and session stores for one CLI command, closed (threads and pools) after it."""
    engine = await open_database(settings)
    sessions = SqlSessionStore.open(settings.database_url, engine)
    try:
        yield SqlUserStore(engine), sessions
    finally:
        sessions.close()
        await engine.dispose()
