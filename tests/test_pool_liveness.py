"""The threaded store's PostgreSQL pool checks a connection at checkout without a round trip
(``store/sql/liveness.py``): a connection the server has ended is replaced, a live one is
handed out as it is. Through the real pool, on a real server; the app-level attack (every
backend ended between two requests) is in tests/test_fault_injection.py.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from authsvc.store.sql.engine import create_sync_engine
from tests.support import end_backends


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(postgres_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_live_connection_is_handed_out_again(engine: Engine) -> None:
    assert _backend_pid(engine) == _backend_pid(engine), "expected the pooled connection reused"


def test_a_connection_the_server_ended_is_replaced_at_checkout(engine: Engine, postgres_url: str) -> None:
    """The server's FATAL message is in the buffer: read at checkout, the connection is dropped."""
    first = _backend_pid(engine)
    asyncio.run(end_backends(postgres_url, "pid", first))
    second = _backend_pid(engine)  # raised OperationalError without the check (and no pre-ping)
    assert second != first, "expected a new connection in place of the ended one"


def test_a_connection_whose_stream_ended_is_replaced_at_checkout(engine: Engine, postgres_url: str) -> None:
    """The FATAL message already read (as a notice would be, by anything that parsed the input)
    and only the end of the stream left: libpq reports it at checkout, and the connection is
    dropped all the same."""
    first = _backend_pid(engine)
    asyncio.run(end_backends(postgres_url, "pid", first))
    pooled = engine.pool._pool.queue[0]  # type: ignore[attr-defined]  # the idle ConnectionRecord
    pgconn = pooled.dbapi_connection.pgconn
    pgconn.consume_input()
    pgconn.is_busy()
    pooled.info["authsvc.server_notices"].ending = False  # as if the FATAL had not been seen
    # The stream's end follows the FATAL as the backend exits: wait until it is there to read.
    assert select.select([pgconn.socket], [], [], 5)[0], "expected the stream's end within 5 s"
    second = _backend_pid(engine)
    assert second != first, "expected a new connection in place of the closed one"
