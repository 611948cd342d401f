"""The schema: a fresh SQLite database is at head after start, the CLI's ``db`` commands,
and the migrations agree with ``authsvc/store/sql/tables.py``."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.migrations import current_revision, head_revision, upgrade
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.tables import metadata
from tests.support import AppHarness, run_cli, server_env


async def schema_differences(engine: AsyncEngine) -> list[Any]:
    def diff(conn: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(diff)


async def test_fresh_database_is_at_head_after_start(harness: AppHarness) -> None:
    assert await current_revision(harness.services.engine) == head_revision()


async def test_migrated_schema_matches_the_tables(harness: AppHarness) -> None:
    differences = await schema_differences(harness.services.engine)
    assert differences == [], f"tables.py and the migrations disagree: {differences}"


async def test_every_table_exists_after_start(harness: AppHarness) -> None:
    async with harness.services.engine.connect() as conn:
        names = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    assert set(metadata.tables) <= names
    assert "alembic_version" in names


async def test_upgrade_is_idempotent(harness: AppHarness) -> None:
    await harness.add_user()
    await upgrade(harness.services.engine)
    assert await current_revision(harness.services.engine) == head_revision()
    assert await harness.services.users.by_username("alice") is not None
    assert (await harness.login()).status_code == 200


async def test_restart_on_an_existing_database_keeps_data(harness_factory: Any) -> None:
    first: AppHarness = await harness_factory()
    await first.add_user()
    second: AppHarness = await harness_factory()
    assert (await second.login()).status_code == 200


async def test_db_current_and_upgrade_through_the_cli(tmp_path: Path) -> None:
    db_path = tmp_path / "cli.db"
    env = server_env(tmp_path, database_url=f"sqlite:///{db_path}")
    head = head_revision()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env, cwd=tmp_path)

    missing = await asyncio.to_thread(cli, "db", "current")
    assert missing.returncode == 1  # db current creates no database (issue #13, finding 16)
    assert "no database at" in missing.stderr and "db upgrade" in missing.stderr
    assert not db_path.exists()

    db_path.touch()  # an empty file, as another tool might leave: a database without a schema
    before = await asyncio.to_thread(cli, "db", "current")
    assert before.returncode == 0, before.stderr
    assert "empty" in before.stdout
    assert head in before.stdout
    assert "db upgrade" in before.stdout  # it tells the operator what to run

    upgraded = await asyncio.to_thread(cli, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert head in upgraded.stdout

    after = await asyncio.to_thread(cli, "db", "current")
    assert after.returncode == 0, after.stderr
    assert after.stdout.count(head) == 2
    assert "db upgrade" not in after.stdout
    assert "Traceback" not in before.stderr + upgraded.stderr + after.stderr

    engine = create_engine(f"sqlite:///{db_path}")
    try:
        assert await current_revision(engine) == head
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_db_commands_with_a_bad_database_url_are_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path, database_url="mysql://nobody@localhost/authsvc")
    result = await asyncio.to_thread(run_cli, "db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AUTHSVC_DATABASE_URL" in lines[0]
