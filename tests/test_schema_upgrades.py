"""Migrations on both engines: from an empty database, and from the first schema with data in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text

from authsvc.migrations import current_revision, head_revision, upgrade
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.tables import metadata, users


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    from tests.support import fresh_postgres_database

    url, drop = fresh_postgres_database(upgrade_schema=False)
    try:
        yield url
    finally:
        drop()


async def test_upgrade_from_empty_reaches_head_and_matches_the_tables(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        def diff(conn: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == [], f"tables.py and the migrations disagree: {differences}"
        await upgrade(engine)  # idempotent
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrade_from_the_first_schema_keeps_data(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await upgrade(engine, "0001")
        assert await current_revision(engine) == "0001"
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "key_manifest" not in names
        async with engine.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id="u_1",
                    username="old",
                    password_hash="x",
                    disabled=False,
                    scopes="a",
                    email=None,
                    full_name=None,
                    created_at=1.0,
                    updated_at=1.0,
                )
            )
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert (await conn.execute(select(users.c.username))).scalars().all() == ["old"]
            assert (await conn.execute(text("SELECT count(*) FROM key_manifest"))).scalar() == 0
    finally:
        await engine.dispose()
