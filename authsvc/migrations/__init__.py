"""Alembic migrations for SQLite and PostgreSQL; ``upgrade`` runs them in-process."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["current_revision", "head_revision", "upgrade"]

_HERE = Path(__file__).parent
_MIGRATION_LOCK_ID = 0x61757468_6D6967  # "auth" "mig"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; concurrent upgraders wait for each other."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        lock_path = f"{database}.migrate.lock" if database and database != ":memory:" else None
        with FileLock(lock_path, timeout=120) if lock_path else contextlib.nullcontext():
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))
        return
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
