"""The key store in the database (``AUTHSVC_KEY_STORE=database``).

The same two things as the file store — one manifest document and one PEM
per private key — in two tables, so instances on different hosts share keys
without a shared filesystem. Private keys are always encrypted (a passphrase
is required by the settings). A writer holds a transaction-scoped lock
(PostgreSQL advisory lock; SQLite's write lock) and commits the whole change
at once, which makes every rotation atomic.

This store uses a synchronous engine (psycopg / sqlite3): the rotation code
and the CLI are synchronous, and the server reads it from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, create_engine, delete, insert, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from authsvc.errors import KeyStoreError
from authsvc.keys.model import KeySetDoc
from authsvc.store.sql.engine import sync_url
from authsvc.store.sql.tables import key_manifest, private_keys

__all__ = ["DatabaseKeyStore"]

_ADVISORY_LOCK_ID = 0x617574687376  # "authsv"


class DatabaseKeyStore:
    kind = "database"

    def __init__(self, database_url: str, engine: Engine | None = None) -> None:
        """``engine``: a server's pooled synchronous engine to share (its session store's), so
        that polling the store every half second opens no connection of its own; a command,
        which reads once, gets an engine without a pool."""
        if engine is None:
            url, connect_args = sync_url(database_url)
            engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
        self._engine: Engine = engine
        self._tx: Connection | None = None

    def describe(self) -> str:
        return "database"

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._tx is not None:
            yield self._tx
            return
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise KeyStoreError(f"key store (database) is unreachable: {type(exc).__name__}") from None

    # --- reading ---------------------------------------------------------------------
    def _manifest_row(self, *columns: Any) -> Any:
        """The manifest row, or None when there is none or no schema yet (an empty store)."""
        with self._connection() as conn:
            try:
                return conn.execute(select(*columns)).first()
            except SQLAlchemyError:
                if self._tx is None and not inspect(conn).has_table(key_manifest.name):
                    return None
                raise

    def version(self) -> tuple[int, str] | None:
        row = self._manifest_row(key_manifest.c.generation, key_manifest.c.updated_by)
        return None if row is None else (int(row.generation), str(row.updated_by))

    def read(self) -> KeySetDoc:
        row = self._manifest_row(key_manifest.c.document)
        raw = None if row is None else row.document
        if raw is None:
            return KeySetDoc()
        try:
            return KeySetDoc.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"key store manifest in the database is corrupt: {exc}") from None

    def read_private(self, kid: str) -> bytes | None:
        with self._connection() as conn:
            pem = conn.execute(
                select(private_keys.c.pem).where(private_keys.c.kid == kid)
            ).scalar_one_or_none()
        return None if pem is None else pem.encode()

    def private_kids(self) -> set[str]:
        with self._connection() as conn:
            return set(conn.execute(select(private_keys.c.kid)).scalars())

    # --- writing (inside ``lock()``) ----------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 60.0) -> Iterator[None]:
        """One transaction holding the store's lock; committed when the block ends."""
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'"))
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._tx = conn
                try:
                    yield
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
                finally:
                    self._tx = None
        except SQLAlchemyError as exc:
            raise KeyStoreError(
                f"key store (database) is locked or unreachable: {type(exc).__name__}"
            ) from None

    def _writer(self) -> Connection:
        if self._tx is None:
            raise KeyStoreError("key store writes need the lock")
        return self._tx

    def ensure_directory(self) -> None:
        """Nothing to create: the migrations made the tables."""

    def clean_temporaries(self) -> None:
        """No temporary files in a database."""

    def write_private(self, kid: str, pem: bytes) -> None:
        conn = self._writer()
        conn.execute(delete(private_keys).where(private_keys.c.kid == kid))
        conn.execute(insert(private_keys).values(kid=kid, pem=pem.decode()))

    def write(self, doc: KeySetDoc) -> None:
        conn = self._writer()
        values: dict[str, Any] = {
            "generation": doc.generation,
            "document": json.dumps(doc.to_json(), sort_keys=True),
            "updated_by": _writer_id(),
        }
        if conn.execute(update(key_manifest).where(key_manifest.c.id == 1).values(**values)).rowcount == 0:
            conn.execute(insert(key_manifest).values(id=1, **values))

    def delete_private(self, kid: str) -> None:
        self._writer().execute(delete(private_keys).where(private_keys.c.kid == kid))

    def dispose(self) -> None:
        self._engine.dispose()


def _writer_id() -> str:
    import os
    import secrets
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
