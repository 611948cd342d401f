"""SQLite commits are durable before they are answered: WAL with ``synchronous=FULL`` on every
connection authsvc opens (the async engine and the worker threads' synchronous engine).

With WAL, ``synchronous=NORMAL`` does not fsync at commit: a power loss may roll committed
refreshes back, unspending spent tokens. Issue 18: no setting trades durability for speed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from authsvc.store.sql.engine import create_engine, create_sync_engine

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def test_every_sqlite_connection_commits_durably(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'authsvc.db'}"
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == FULL
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()
    sync_engine = create_sync_engine(url)  # where refreshes and the other writes commit
    try:
        with sync_engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == FULL
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        sync_engine.dispose()
