"""The few hot statements of a refresh, compiled once per dialect and run on the driver's cursor.

SQLAlchemy's ``Connection.execute`` costs tens of microseconds of Python per
statement even for a cached Core statement (execution context, result
wrapping, row objects), several times what sqlite3 or psycopg take to run it.
A refresh runs three such statements (two on PostgreSQL, where a batch's
refreshes also share theirs: ``spend_ahead``; and two savepoint statements more
when its write shares a transaction with one that raised), on
the worker thread that holds SQLite's write lock. Here each statement is still
built with SQLAlchemy Core and compiled by SQLAlchemy for the connection's
dialect, once; it then runs on the DBAPI cursor of the same connection, inside
the same transaction, with plain tuples back. psycopg prepares a statement on
the server once it has run it a few times. A driver error comes out as SQLAlchemy's (a ``DBAPIError``, the
connection invalidated when it was lost); when anything listens to statement
events (instrumentation, the fault-injection tests) SQLAlchemy runs the
statement itself, so that its listeners see it with their usual context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared", "driver_execute"]


class Prepared:
    """One Core statement, compiled per dialect; ``run`` returns the rows it produced."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def _sql(self, conn: Connection) -> tuple[str, tuple[str, ...] | None]:
        name = conn.dialect.name
        found = self._compiled.get(name)
        if found is None:
            compiled = cast(SQLCompiler, self.statement.compile(dialect=conn.dialect))
            order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            found = (str(compiled), order)
            self._compiled[name] = found
        return found

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        sql, order = self._sql(conn)
        bound = tuple(params[name] for name in order) if order else dict(params)
        if _observed(conn):  # someone listens to statements: SQLAlchemy runs it, events and all
            result = conn.exec_driver_sql(sql, bound)
            return list(result.fetchall()) if result.returns_rows else []
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            try:
                cursor.execute(sql, bound)
            except conn.dialect.loaded_dbapi.Error as exc:
                raise _wrapped(conn, cursor, sql, bound, exc) from exc
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()


def driver_execute(conn: Connection, sql: str) -> None:
    """A statement without parameters or rows (a savepoint's) on the connection's DBAPI cursor."""
    if _observed(conn):
        conn.exec_driver_sql(sql)
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        try:
            cursor.execute(sql)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, cursor, sql, (), exc) from exc
    finally:
        cursor.close()


def _observed(conn: Connection) -> bool:
    """Whether statement events have listeners (instrumentation, fault injection): they get
    SQLAlchemy's own execution, with its context."""
    dispatch = conn.dispatch
    handle_error = conn.dialect.dispatch.handle_error  # dialect-level listeners
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute or handle_error)


def _wrapped(conn: Connection, cursor: Any, sql: str, params: Any, exc: Any) -> StatementError:
    """The driver's error as SQLAlchemy would raise it (a ``DBAPIError``: the app answers 503
    for an unavailable database), the connection invalidated when it was lost, as SQLAlchemy
    does, so that the pool does not hand it out again."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    error: StatementError = DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
    return error
