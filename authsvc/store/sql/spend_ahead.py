"""PostgreSQL: a batch's refresh spends in one statement, and their successors' rows in one insert.

Group commit (``ThreadedDatabase``) already shares one transaction and one
commit among the writes that queue together; each refresh in it still ran its
own compare-and-set and its own insert. On PostgreSQL a statement costs about
30 µs of the driver's CPU, two round trips and two GIL hand-backs of the worker
thread, so those two statements were most of what a refresh cost beyond
SQLite. Here the spends of a batch's refreshes run ahead, as one
``UPDATE … FROM unnest(…)``, before any write of the batch; each refresh then
finds its own outcome, and the successor rows it records are inserted together
before the next statement of anything else and before the commit. Measured on
the store alone (batches of 32): 210 → 88 µs of CPU a refresh. SQLite keeps a
statement a write: it runs in-process, and sharing measured no cheaper there.

The compare-and-set is the single-row one, row for row: a row is spent only if
it is still unspent, of this client, unexpired and issued as exactly these
bytes (or without a digest), and a concurrent spender elsewhere waits on the
row lock and re-checks. Two refreshes of one token in a batch are left to run
their own statements in turn (the second finds the first's spend: a replay).

What the batch means stays serial: ``ThreadedDatabase`` runs the writes whose
spend succeeded first, in queue order, then the others. A refresh changes only
its own rows, so spending them all first is what running them one after another
in that order would have done; nothing a later write does can make a row
spendable again. Anything unusual (a spent token whose session has ended, a
database error) raises inside the batch, which then runs again the old way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, Float, bindparam, cast, column, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import TableValuedAlias

from authsvc.store.records import SessionRecord, SpendRequest, SpentToken
from authsvc.store.sql.prepared import Prepared
from authsvc.store.sql.tables import refresh_tokens, sessions, users

__all__ = [
    "NOT_AHEAD",
    "TOKEN_COLUMNS",
    "SpendAhead",
    "SpendNotTaken",
    "session_and_disabled",
]

_INFO_KEY: Final = "authsvc.spend_ahead"
#: ``SpendAhead.take``'s answer for a spend that did not run ahead (the caller runs its own).
NOT_AHEAD: Final = object()
_SESSION_COLUMNS: Final = tuple(c.name for c in sessions.columns)
TOKEN_COLUMNS: Final = ("jti", "session_id", "client_id", "kid", "issued_at", "expires_at", "digest")


class SpendNotTaken(RuntimeError):
    """A write announced a spend (``SpendRequest``) and did not make it."""


class SpendAhead:
    """One batch's spends, run ahead, and the successor rows waiting to be inserted."""

    def __init__(self, conn: Connection, requests: Sequence[SpendRequest | None]) -> None:
        self.conn = conn
        self._outcomes: dict[str, tuple[SpendRequest, SpentToken | None]] = {}
        self._pending: list[tuple[Any, ...]] = []
        self._taken: set[str] = set()
        self.spent: frozenset[int] = frozenset()  # indexes of the writes whose spend succeeded
        if conn.dialect.name != "postgresql":
            return  # SQLite runs in-process: a statement costs a few µs there, and sharing saved none
        counts: dict[str, int] = {}
        for request in requests:
            if request is not None:
                counts[request.jti] = counts.get(request.jti, 0) + 1
        ahead = [r for r in requests if r is not None and counts[r.jti] == 1]
        if len(ahead) < 2:
            return
        outcomes = self._spend_many(ahead)
        self._outcomes = {r.jti: (r, outcomes.get(r.jti)) for r in ahead}
        self.spent = frozenset(
            index
            for index, r in enumerate(requests)
            if r is not None and r.jti in self._outcomes and self._outcomes[r.jti][1] is not None
        )
        conn.info[_INFO_KEY] = self

    @classmethod
    def of(cls, conn: Connection) -> SpendAhead | None:
        """The batch's run-ahead, while one is open on ``conn``."""
        found: SpendAhead | None = conn.info.get(_INFO_KEY)
        return found

    def close(self) -> None:
        self.conn.info.pop(_INFO_KEY, None)

    def take(self, request: SpendRequest) -> SpentToken | object | None:
        """This spend's outcome (the spent row, or None: nothing spent), or ``NOT_AHEAD``."""
        found = self._outcomes.get(request.jti)
        if found is None or found[0] != request:
            return NOT_AHEAD
        self._taken.add(request.jti)
        return found[1]

    def check_taken(self, request: SpendRequest | None) -> None:
        """After a write whose spend succeeded ahead: raise unless it took that spend. A write
        that announced a spend it then did not make would leave a token spent for nothing; the
        batch is rolled back and runs again the old way."""
        if request is None or request.jti not in self._taken:
            raise SpendNotTaken("a write did not make the spend it announced")

    def defer_insert(self, row: tuple[Any, ...]) -> None:
        """A successor row (``TOKEN_COLUMNS`` order), inserted with the others by ``settle``."""
        self._pending.append(row)

    def settle(self) -> None:
        """Insert the waiting successor rows (one statement): before anything else reads or writes."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        _INSERT.run(self.conn, _arrays(TOKEN_COLUMNS, rows))

    def _spend_many(self, ahead: list[SpendRequest]) -> dict[str, SpentToken]:
        rows_in = [(r.jti, r.client_id, r.now, r.digest, r.successor_jti) for r in ahead]
        rows = _SPEND.run(self.conn, _arrays(_SPEND_COLUMNS, rows_in))
        # jti, session_id, digest, the session's columns, the user's disabled
        return {str(row[0]): SpentToken(str(row[1]), row[2], session_and_disabled(row[3:])) for row in rows}


def session_and_disabled(row: Sequence[Any]) -> tuple[SessionRecord, bool] | None:
    """A session row followed by its user's ``disabled``; None when either is missing (NULLs)."""
    disabled = row[len(_SESSION_COLUMNS)]
    if row[0] is None or disabled is None:
        return None
    return SessionRecord(**dict(zip(_SESSION_COLUMNS, row, strict=False))), bool(disabled)


_SPEND_COLUMNS: Final = ("jti", "client_id", "now", "digest", "successor_jti")
_TYPES: Final = {name: c.type for name, c in refresh_tokens.columns.items()} | {"now": Float()}


def _unnest(names: Sequence[str], alias: str) -> TableValuedAlias:
    """Rows from one array parameter per column (``unnest``): one statement text whatever the
    batch's size, so psycopg converts it once and prepares it on the server. A ``VALUES`` list of
    numbered parameters was a new text for each size, and over 50 parameters psycopg parsed it
    again on every run (about 7 % of a PostgreSQL refresh's samples)."""
    arrays = [cast(bindparam(f"a_{name}"), ARRAY(_TYPES[name])) for name in names]
    columns = [column(name, _TYPES[name]) for name in names]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=alias)


def _arrays(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """``_unnest``'s parameters: each column's values, in row order."""
    return {f"a_{name}": list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}


def _spend_statement() -> Prepared:
    """The compare-and-set of a batch's tokens in one ``UPDATE … FROM unnest(…)``, and their
    sessions and users read in the same statement, outer-joined as ``sessions._SPEND_WITH_SESSION``
    does for one."""
    v = _unnest(_SPEND_COLUMNS, "v")
    t = refresh_tokens
    spend = (
        update(t)
        .where(
            t.c.jti == v.c.jti,
            t.c.spent_at.is_(None),
            t.c.client_id == v.c.client_id,
            t.c.expires_at > v.c.now,
            or_(t.c.digest == v.c.digest, t.c.digest.is_(None)),
        )
        .values(spent_at=v.c.now, successor_jti=v.c.successor_jti)
        .returning(t.c.jti, t.c.session_id, t.c.digest)
    )
    spent = spend.cte("spent")
    return Prepared(
        select(spent.c.jti, spent.c.session_id, spent.c.digest, sessions, users.c.disabled).select_from(
            spent.outerjoin(sessions, sessions.c.id == spent.c.session_id).outerjoin(
                users, users.c.id == sessions.c.user_id
            )
        )
    )


def _insert_statement() -> Prepared:
    r = _unnest(TOKEN_COLUMNS, "r")
    return Prepared(
        insert(refresh_tokens).from_select(list(TOKEN_COLUMNS), select(*[r.c[n] for n in TOKEN_COLUMNS]))
    )


_SPEND: Final = _spend_statement()
_INSERT: Final = _insert_statement()
