"""Secrets every instance must share, made once and kept in the database (the DPoP nonce key)."""

from __future__ import annotations

import contextlib
import secrets

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from authsvc.store.sql.tables import server_secrets
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["shared_secret"]


async def shared_secret(db: ThreadedDatabase, name: str) -> bytes:
    """The secret called ``name``: the one any instance made first (256 random bits)."""

    def read(conn: Connection) -> str | None:
        value = conn.execute(select(server_secrets.c.secret).where(server_secrets.c.name == name)).scalar()
        return None if value is None else str(value)

    def make(conn: Connection) -> None:
        conn.execute(insert(server_secrets).values(name=name, secret=secrets.token_hex(32)))

    found = await db.read(read)
    if found is None:
        with contextlib.suppress(IntegrityError):  # another instance made it first: theirs counts
            await db.write(make)
        found = await db.read(read)
    assert found is not None
    return bytes.fromhex(found)
