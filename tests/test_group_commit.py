"""Group commit (``authsvc.store.sql.threaded``): writes queued together share one transaction.

A batch first runs its writes back to back, without savepoints; if one raises,
the batch is rolled back and runs again with each write in a savepoint of its
own (and so do the next few batches): the one that raises is rolled back and
gets its exception, the others commit; nobody is answered before the commit;
a write that failed on a database error inside a batch runs again alone. On
SQLite files and on PostgreSQL, through the real engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, select
from sqlalchemy.exc import IntegrityError, OperationalError

from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.threaded import SAVEPOINTS_AFTER_FAILURE, ThreadedDatabase

metadata = MetaData()
items = Table("gc_items", metadata, Column("id", Integer, primary_key=True), Column("name", String(40)))


class Refused(Exception):
    pass


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[ThreadedDatabase]:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    database = ThreadedDatabase(database_url, engine)
    try:
        yield database
    finally:
        database.close()
        await engine.dispose()


def _insert(i: int, *, fail: bool = False) -> Any:
    def tx(conn: Any) -> int:
        conn.execute(items.insert().values(id=i, name=f"n{i}"))
        if fail:
            raise Refused(i)  # after its write: the savepoint must undo it
        return i

    return tx


async def _names(db: ThreadedDatabase) -> set[str]:
    return set(await db.read(lambda conn: [r.name for r in conn.execute(select(items)).all()]))


class _Savepoints:
    """SAVEPOINT statements the engine sends (a listener: statements then run through SQLAlchemy)."""

    def __init__(self, db: ThreadedDatabase) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += statement.startswith("SAVEPOINT")


async def _batch(db: ThreadedDatabase, writes: list[Any]) -> list[Any]:
    """The writes queued in one step of the loop: the first flusher takes them as one batch."""
    return await asyncio.gather(*[db.write(w) for w in writes], return_exceptions=True)


class _Commits:
    def __init__(self, db: ThreadedDatabase) -> None:
        self.count = 0
        event.listen(db.engine, "commit", self._seen)

    def _seen(self, _conn: Any) -> None:
        self.count += 1


async def test_writes_queued_together_share_commits_and_a_failing_one_is_undone(db: ThreadedDatabase) -> None:
    commits = _Commits(db)
    n = 40
    results = await asyncio.gather(
        *[db.write(_insert(i, fail=i % 7 == 3)) for i in range(n)], return_exceptions=True
    )
    for i, result in enumerate(results):
        if i % 7 == 3:
            assert isinstance(result, Refused), f"expected write {i} to get its own exception"
        else:
            assert result == i
    assert await _names(db) == {f"n{i}" for i in range(n) if i % 7 != 3}
    assert commits.count < n, f"expected writes queued together to share commits ({commits.count} for {n})"


async def test_a_duplicate_in_a_batch_fails_alone(db: ThreadedDatabase) -> None:
    """A database error (here a primary key taken earlier in the same batch) is that write's."""
    results = await asyncio.gather(*[db.write(_insert(i % 10)) for i in range(20)], return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, IntegrityError)) == 10
    assert await _names(db) == {f"n{i}" for i in range(10)}


async def test_a_write_that_met_a_database_error_in_a_batch_runs_again_alone(db: ThreadedDatabase) -> None:
    calls = {"n": 0}

    def flaky(conn: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:  # as a PostgreSQL deadlock between two batches would
            raise OperationalError("SELECT 1", {}, Exception("deadlock detected"))
        conn.execute(items.insert().values(id=999, name="flaky"))
        return "done"

    results = await asyncio.gather(*[db.write(_insert(i)) for i in range(5)], db.write(flaky))
    assert results[-1] == "done"
    assert "flaky" in await _names(db)


async def test_nobody_is_answered_when_the_commit_fails(db: ThreadedDatabase) -> None:
    def refuse_commit(_conn: Any) -> None:
        raise RuntimeError("disk full")

    event.listen(db.engine, "commit", refuse_commit)
    results = await asyncio.gather(*[db.write(_insert(i)) for i in range(10)], return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results), f"expected every write refused: {results}"
    event.remove(db.engine, "commit", refuse_commit)
    assert await _names(db) == set()
    assert await db.write(_insert(1)) == 1, "expected the store usable after a failed commit"


async def test_a_write_queued_as_a_flusher_finishes_is_not_stranded(db: ThreadedDatabase) -> None:
    for i in range(200):  # one at a time: each write starts and ends its flusher
        async with asyncio.timeout(30):  # a stranded write never returns (no extra task layered)
            assert await db.write(_insert(i)) == i
        if i % 3 == 0:
            await asyncio.sleep(0)
    assert len(await _names(db)) == 200


async def test_a_batch_where_nothing_raises_runs_without_savepoints(db: ThreadedDatabase) -> None:
    savepoints, commits = _Savepoints(db), _Commits(db)
    assert await _batch(db, [_insert(i) for i in range(10)]) == list(range(10))
    assert commits.count == 1, f"expected the ten writes in one transaction, saw {commits.count} commits"
    assert savepoints.count == 0, f"expected no savepoint where nothing raised ({savepoints.count})"


async def test_a_write_that_raises_sends_its_batch_and_the_next_to_savepoints(db: ThreadedDatabase) -> None:
    savepoints = _Savepoints(db)
    calls = {"n": 0}

    def counted(i: int) -> Any:
        inner = _insert(i)

        def tx(conn: Any) -> int:
            calls["n"] += 1
            return int(inner(conn))

        return tx

    results = await _batch(db, [counted(0), _insert(1, fail=True), counted(2)])
    assert results[0] == 0 and isinstance(results[1], Refused) and results[2] == 2
    assert calls["n"] == 3, "expected the first write to run twice (rolled back, then in its savepoint)"
    assert await _names(db) == {"n0", "n2"}, "the rolled-back first attempt must leave nothing behind"
    assert savepoints.count == 3, f"expected the batch run again with a savepoint each ({savepoints.count})"
    for batch in range(SAVEPOINTS_AFTER_FAILURE):
        savepoints.count = 0
        base = 10 + 2 * batch
        assert await _batch(db, [_insert(base), _insert(base + 1)]) == [base, base + 1]
        assert savepoints.count == 2, f"expected batch {batch} after the failure in savepoints"
    savepoints.count = 0
    assert await _batch(db, [_insert(100), _insert(101)]) == [100, 101]
    assert savepoints.count == 0, "expected batches back to running without savepoints"
