"""Opening the database: who may create it, and the one line an operator reads when it fails.

Only ``authsvc serve`` (and the app it runs) and ``authsvc db upgrade`` create
a SQLite database; every other command needs one to exist, so a mistyped
``AUTHSVC_DATABASE_URL`` says so instead of quietly creating an empty database
(and its directory) somewhere else. A database that is created is created
0600 before SQLite opens it (SQLite gives its ``-wal`` and ``-shm`` files the
main file's mode); one that exists is tightened to 0600 by the commands that
may create it, once SQLite has opened it as a database (a mistyped path to
some other file is never touched). The first connection of a process is made
here, so a refused or unknown PostgreSQL server is one line naming the host,
port and setting.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.errors import ConfigError, StorageUnavailable
from authsvc.private_files import create_private_file, make_private
from authsvc.store.sql.engine import async_url, create_engine

__all__ = ["connect_database", "require_database", "sqlite_path"]

#: Files SQLite (and the migration lock) keep beside the database.
_COMPANIONS = ("-wal", "-shm", "-journal", ".migrate.lock")


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL and in-memory SQLite."""
    url, _args = async_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # an SQLite URI: SQLite decides what it opens
        return None
    return Path(database)


async def connect_database(database_url: str, *, create: bool) -> AsyncEngine:
    """An engine that has connected once; ``create`` is for ``serve`` and ``db upgrade`` only.

    Without ``create`` a missing SQLite file is refused with one line. With it, a
    missing file is created 0600 before SQLite opens it, and an existing one is
    tightened to 0600 (with its ``-wal``, ``-shm`` and lock) once SQLite has
    opened it — so a path to something that is not a database is never touched.
    """
    path = sqlite_path(database_url)
    if path is not None:
        _create_or_require(path, create=create)
    engine = create_engine(database_url)
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        await engine.dispose()
        raise StorageUnavailable(f"AUTHSVC_DATABASE_URL: {_where(engine.url)}: {_reason(exc)}") from None
    if path is not None and create:
        _make_private(path)
    return engine


def require_database(database_url: str) -> None:
    """Refuse, with one line, a SQLite URL whose file is not there (no connection made)."""
    path = sqlite_path(database_url)
    if path is not None:
        _create_or_require(path, create=False)


def _create_or_require(path: Path, *, create: bool) -> None:
    if create:
        try:
            create_private_file(path)
        except OSError as exc:
            raise ConfigError(f"AUTHSVC_DATABASE_URL: cannot create {path}: {_reason(exc)}") from None
    elif not path.is_file():
        raise ConfigError(
            f"AUTHSVC_DATABASE_URL: no database at {path}; "
            "`authsvc db upgrade` (or `authsvc serve`) creates it"
        )


def _make_private(path: Path) -> None:
    try:
        for file in (path, *(Path(f"{path}{suffix}") for suffix in _COMPANIONS)):
            make_private(file)
        # migrations.upgrade's FileLock would create this with the process umask.
        create_private_file(Path(f"{path}.migrate.lock"))
    except OSError as exc:
        reason = _reason(exc)
        raise ConfigError(f"AUTHSVC_DATABASE_URL: cannot make {path} private (0600): {reason}") from None


def _where(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"cannot open the SQLite database {url.database}"
    return f"cannot connect to PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"


def _reason(exc: BaseException) -> str:
    """A short reason: the OS's words, SQLite's or the PostgreSQL server's first line, else the class."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig.__cause__ or exc.orig  # SQLAlchemy's asyncpg adapter wraps the driver's error
    if type(exc).__module__.startswith("asyncpg") and str(exc).strip():
        # The server's message: 'database "x" does not exist', 'password authentication
        # failed for user "y"' (names from the URL; never the password).
        return str(exc).strip().splitlines()[0]
    if isinstance(exc, sqlite3.Error):  # SQLite's fixed texts: "file is not a database", ...
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or 'name resolution failed'})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return type(exc).__name__
