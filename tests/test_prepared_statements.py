"""The hot statements on the driver's cursor (``store/sql/prepared.py``) behave as SQLAlchemy's.

A driver error comes out as SQLAlchemy's ``DBAPIError`` (the app maps it to 503
for an unavailable database), a lost connection is invalidated so the pool
does not hand it out again, and statement listeners (instrumentation, fault
injection) still see every statement. SQLite files and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, event, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from authsvc.store.sql.engine import create_sync_engine
from authsvc.store.sql.prepared import Prepared

metadata = MetaData()
rows = Table("prepared_rows", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))
INSERT = Prepared(insert(rows).values(id=bindparam("p_id"), name=bindparam("p_name")))
SELECT = Prepared(select(rows.c.name).where(rows.c.id == bindparam("p_id")))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(database_url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_rows_come_back_as_tuples(engine: Engine) -> None:
    with engine.begin() as conn:
        assert INSERT.run(conn, {"p_id": 1, "p_name": "one"}) == []
        assert [tuple(r) for r in SELECT.run(conn, {"p_id": 1})] == [("one",)]
        assert SELECT.run(conn, {"p_id": 2}) == []


def test_a_driver_error_is_sqlalchemys(engine: Engine) -> None:
    with engine.begin() as conn:
        INSERT.run(conn, {"p_id": 1, "p_name": "one"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        INSERT.run(conn, {"p_id": 1, "p_name": "again"})
    with engine.begin() as conn:
        assert [tuple(r) for r in SELECT.run(conn, {"p_id": 1})] == [("one",)]


def test_statement_listeners_see_every_statement(engine: Engine) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.begin() as conn:
            INSERT.run(conn, {"p_id": 7, "p_name": "seven"})
            assert [tuple(r) for r in SELECT.run(conn, {"p_id": 7})] == [("seven",)]
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert any("INSERT INTO prepared_rows" in s for s in seen)
    assert any("SELECT prepared_rows.name" in s for s in seen)


def test_a_lost_connection_is_invalidated_and_the_pool_recovers(postgres_url: str) -> None:
    """A server that drops the connection mid-transaction: PostgreSQL."""
    engine = create_sync_engine(postgres_url)
    metadata.create_all(engine)
    try:
        _cut_mid_transaction(engine)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def _cut_mid_transaction(engine: Engine) -> None:

    def cut_then_select() -> None:
        with engine.begin() as conn:  # checked out: the pool's pre-ping is behind it
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                killer.commit()
            SELECT.run(conn, {"p_id": 1})

    with pytest.raises(DBAPIError) as caught:
        cut_then_select()
    assert caught.value.connection_invalidated, "expected the lost connection invalidated"
    with engine.begin() as conn:  # the pool hands out a live connection
        assert SELECT.run(conn, {"p_id": 1}) == []
