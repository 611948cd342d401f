"""The few hot statements of a refresh, compiled once per dialect and run on the driver's cursor.

SQLAlchemy's ``Connection.execute`` costs tens of microseconds of Python per
statement even for a cached Core statement (execution context, result
wrapping, row objects), several times what sqlite3 or psycopg take to run it.
A refresh runs three such statements (and two savepoint statements when its
write shares a transaction), on the worker thread that holds SQLite's write
lock. Here each statement is still built with SQLAlchemy Core and compiled by
SQLAlchemy for the connection's dialect, once; it then runs on the DBAPI
cursor of the same connection, inside the same transaction, with plain tuples
back. psycopg prepares a statement on the server once it has run it a few
times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
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
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, tuple(params[name] for name in order) if order else dict(params))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()


def driver_execute(conn: Connection, sql: str) -> None:
    """A statement without parameters or rows (a savepoint's) on the connection's DBAPI cursor."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()
