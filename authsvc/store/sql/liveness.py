"""A pooled PostgreSQL connection checked at checkout from what the server already sent, not by a
round trip.

SQLAlchemy's ``pool_pre_ping`` sends a statement at every checkout. For the
threaded store's writer (``threaded``) that was one round trip of a batch's
five, about 60 µs of CPU and a wait for the GIL on the worker thread.
A server that ends a connection (a restart, ``pg_terminate_backend``, an idle
timeout) says so first, a FATAL message, and then closes the stream; both are
in the socket's buffer by the time the connection is next checked out. Reading
what is there (libpq's ``PQconsumeInput``, which never blocks, then parsing it)
tells a connection the server has ended from a live one without asking the
server anything: about half a microsecond.

What neither this nor a ping can see in time is a server that vanished
without a word (a partition): the ping would wait on TCP as a statement does.
The first statement then fails, the connection is invalidated, and a write
batch runs again on another connection (``threaded``).
"""

from __future__ import annotations

from typing import Any, Final

from psycopg import OperationalError, pq
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

__all__ = ["check_at_checkout"]

_NOTICES_KEY: Final = "authsvc.server_notices"
#: Severities with which the server ends a session (a FATAL from an idle backend is only a notice).
_ENDING: Final = frozenset({"FATAL", "PANIC"})


class _ServerNotices:
    """A connection's notice handler: remembers that the server said it was ending the session."""

    __slots__ = ("ending",)

    def __init__(self) -> None:
        self.ending = False

    def __call__(self, diagnostic: Any) -> None:
        if diagnostic.severity_nonlocalized in _ENDING:
            self.ending = True


def _watch(dbapi_connection: Any, connection_record: Any) -> None:
    notices = _ServerNotices()
    dbapi_connection.add_notice_handler(notices)
    connection_record.info[_NOTICES_KEY] = notices


def _check(dbapi_connection: Any, connection_record: Any, _proxy: Any) -> None:
    """Raise ``DisconnectionError`` (the pool then drops it and connects anew) for a connection
    whose server has ended it."""
    pgconn = dbapi_connection.pgconn
    try:
        pgconn.consume_input()  # what has arrived, without waiting
        pgconn.is_busy()  # parsed: an idle session's FATAL goes to the notice handler
    except OperationalError as exc:  # the stream ended: "server closed the connection unexpectedly"
        raise DisconnectionError("the server closed the connection") from exc
    notices: _ServerNotices | None = connection_record.info.get(_NOTICES_KEY)
    if pgconn.status != pq.ConnStatus.OK or (notices is not None and notices.ending):
        raise DisconnectionError("the server ended the session")


def check_at_checkout(engine: Engine) -> None:
    """Check ``engine``'s psycopg connections at checkout in place of ``pool_pre_ping``."""
    event.listen(engine, "connect", _watch)
    event.listen(engine, "checkout", _check)
