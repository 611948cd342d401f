"""Sessions (refresh-token families), refresh-token rows and revocations in SQL.

This module only runs statements; what they mean (reuse, grace, revocation of
a family: RFC 9700 §4.14) is decided by ``authsvc.tokens.families``, which
hands ``write`` a function to run inside one transaction.

Each transaction runs whole on a worker thread (``ThreadedDatabase``), and
the hot path's statements are built once, with bind parameters, so a refresh
pays neither per-statement async round trips nor statement construction.

The compare-and-set that spends a refresh token (``spend``) marks it spent
only if it is still unspent, so of N concurrent refreshes exactly one sees a
row — on SQLite (the first write takes the database's write lock) and on
PostgreSQL (the row lock makes the losers re-check ``spent_at``) alike, across
processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Update,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.records import (
    IssuedRefreshToken,
    RefreshTokenRow,
    SessionRecord,
    SpendRequest,
    SpentToken,
)
from authsvc.store.sql.prepared import Prepared
from authsvc.store.sql.spend_ahead import NOT_AHEAD, TOKEN_COLUMNS, SpendAhead, session_and_disabled
from authsvc.store.sql.tables import (
    browser_sessions,
    clients,
    refresh_tokens,
    revoked_access_tokens,
    sessions,
    users,
)
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["SqlSessionStore", "SqlSessionTransaction", "revoke_sessions"]

T = TypeVar("T")


def _session(row: object) -> SessionRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return SessionRecord(
        id=m["id"],
        user_id=m["user_id"],
        client_id=m["client_id"],
        scope=m["scope"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        revoked_reason=m["revoked_reason"],
        browser_session_id=m["browser_session_id"],
    )


def revoke_sessions(which: ColumnElement[bool], now: float, reason: str) -> Update:
    """End every live session ``which`` selects (a logout, a password change, a client removed)."""
    return (
        update(sessions)
        .where(which, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


def _token(row: object) -> RefreshTokenRow:
    m = row._mapping  # type: ignore[attr-defined]
    return RefreshTokenRow(**{c.name: m[c.name] for c in refresh_tokens.columns})


# The hot path's statements, built once (bind parameters are prefixed ``p_``).
_SPEND_UPDATE = (
    update(refresh_tokens)
    .where(
        refresh_tokens.c.jti == bindparam("p_jti"),
        refresh_tokens.c.spent_at.is_(None),
        refresh_tokens.c.client_id == bindparam("p_client_id"),
        refresh_tokens.c.expires_at > bindparam("p_now"),
        # The exact bytes issued; a row from before revision 0007 has no digest (the caller
        # then checks the signature, inside this transaction).
        or_(refresh_tokens.c.digest == bindparam("p_digest"), refresh_tokens.c.digest.is_(None)),
    )
    .values(spent_at=bindparam("p_spent_at"), successor_jti=bindparam("p_successor_jti"))
    .returning(refresh_tokens.c.session_id, refresh_tokens.c.digest)
)
_SPEND = Prepared(_SPEND_UPDATE)
_SESSION_AND_USER = Prepared(
    select(sessions, users.c.disabled)
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == bindparam("p_session_id"))
)
# PostgreSQL: the spend and the read of its session in one statement (one round trip, not two;
# SQLite has no UPDATE inside WITH). Outer joins: a spent row whose session or user is gone
# still comes back, with NULLs there. The read sees the statement's snapshot, taken before the
# spend: a revocation committed after it is one that ran after this refresh, as it would
# have had it come a moment later, and it ends the successor's session all the same.
_SPENT = _SPEND_UPDATE.cte("spent")
_SPEND_WITH_SESSION = Prepared(
    select(_SPENT.c.session_id, _SPENT.c.digest, sessions, users.c.disabled).select_from(
        _SPENT.outerjoin(sessions, sessions.c.id == _SPENT.c.session_id).outerjoin(
            users, users.c.id == sessions.c.user_id
        )
    )
)
_USER_CREDENTIALS = Prepared(
    select(users.c.credentials_version, users.c.disabled)
    .where(users.c.id == bindparam("p_user_id"))
    .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite holds its write lock already
)
_LIVE_CLIENT = Prepared(
    select(clients.c.client_id)
    .where(clients.c.client_id == bindparam("p_client_id"), clients.c.removed_at.is_(None))
    .with_for_update(read=True)
)
_INSERT_TOKEN = Prepared(
    insert(refresh_tokens).values({name: bindparam(f"p_{name}") for name in TOKEN_COLUMNS})
)
_SESSION_COLUMNS = ("id", "user_id", "client_id", "scope", "created_at", "expires_at", "browser_session_id")
_INSERT_SESSION = Prepared(insert(sessions).values({name: bindparam(name) for name in _SESSION_COLUMNS}))
_KEEP_GRACE_BODY = (
    update(refresh_tokens)
    .where(refresh_tokens.c.jti == bindparam("p_jti"))
    .values(grace_body=bindparam("p_body"), grace_until=bindparam("p_until"))
)


class SqlSessionTransaction:
    """The statements a family decision runs, inside one transaction (on a worker thread)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.revoked = False  # the store tells its caches after the commit
        self._ahead = SpendAhead.of(conn)  # a PostgreSQL batch's shared spends and inserts

    def _settled(self) -> Connection:
        """The connection, once the batch's waiting successor rows are in (if any)."""
        if self._ahead is not None:
            self._ahead.settle()
        return self.conn

    def insert_session(self, session: SessionRecord) -> None:
        _INSERT_SESSION.run(self._settled(), {name: getattr(session, name) for name in _SESSION_COLUMNS})

    def user_credentials(self, user_id: str) -> tuple[int, bool] | None:
        """(credentials version, disabled), share-locked until the transaction ends; None: no user."""
        rows = _USER_CREDENTIALS.run(self._settled(), {"p_user_id": user_id})
        return (int(rows[0][0]), bool(rows[0][1])) if rows else None

    def client_live(self, client_id: str) -> bool:
        """Whether the registered client exists and is not removed (share-locked)."""
        return bool(_LIVE_CLIENT.run(self._settled(), {"p_client_id": client_id}))

    def insert_token(self, token: IssuedRefreshToken, session: SessionRecord) -> None:
        row = (
            token.jti,
            session.id,
            session.client_id,
            token.kid,
            token.issued_at,
            token.expires_at,
            token.digest,
        )
        if self._ahead is not None:  # with the batch's other successors, before anything else
            self._ahead.defer_insert(row)
            return
        _INSERT_TOKEN.run(self.conn, {f"p_{n}": v for n, v in zip(TOKEN_COLUMNS, row, strict=True)})

    def spend(self, request: SpendRequest) -> SpentToken | None:
        """The compare-and-set: the spent row (and its session) if ``jti`` was live, unspent
        and issued as exactly these bytes (or has no digest) and is now spent."""
        if self._ahead is not None:
            ahead = self._ahead.take(request)
            if ahead is not NOT_AHEAD:
                return ahead  # type: ignore[return-value]
            self._ahead.settle()
        params = {
            "p_jti": request.jti,
            "p_client_id": request.client_id,
            "p_now": request.now,
            "p_spent_at": request.now,
            "p_successor_jti": request.successor_jti,
            "p_digest": request.digest,
        }
        if self.conn.dialect.name == "postgresql":
            rows = _SPEND_WITH_SESSION.run(self.conn, params)
            if not rows:
                return None
            session_id, stored_digest, *rest = rows[0]
            return SpentToken(str(session_id), stored_digest, session_and_disabled(rest))
        rows = _SPEND.run(self.conn, params)
        if not rows:
            return None
        session_id, stored_digest = str(rows[0][0]), rows[0][1]
        return SpentToken(session_id, stored_digest, self.session_and_user_disabled(session_id))

    def session_and_user_disabled(self, session_id: str) -> tuple[SessionRecord, bool] | None:
        """The session and whether its user is disabled; None when the user is gone."""
        rows = _SESSION_AND_USER.run(self._settled(), {"p_session_id": session_id})
        return session_and_disabled(rows[0]) if rows else None

    def token(self, jti: str) -> RefreshTokenRow | None:
        row = self._settled().execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti)).first()
        return _token(row) if row else None

    def is_unspent(self, jti: str) -> bool:
        spent_at = (
            self._settled()
            .execute(select(refresh_tokens.c.spent_at).where(refresh_tokens.c.jti == jti))
            .scalar_one_or_none()
        )
        return spent_at is None

    def keep_grace_body(self, jti: str, body: str, until: float) -> None:
        self._settled().execute(_KEEP_GRACE_BODY, {"p_jti": jti, "p_body": body, "p_until": until})

    def drop_grace_bodies(self, session_id: str, keep: str | None = None) -> None:
        where = [refresh_tokens.c.session_id == session_id, refresh_tokens.c.grace_body.is_not(None)]
        if keep is not None:
            where.append(refresh_tokens.c.jti != keep)
        self._settled().execute(update(refresh_tokens).where(*where).values(grace_body=None))

    def revoke_session(self, session_id: str, now: float, reason: str) -> None:
        self._settled().execute(revoke_sessions(sessions.c.id == session_id, now, reason))
        self.revoked = True


class SqlSessionStore:
    def __init__(self, db: ThreadedDatabase, on_revoke: Callable[[], None] | None = None) -> None:
        self.db = db
        # Called after any revocation, so this process's caches of "still allowed"
        # answers forget at once (other processes within their cache lifetime).
        self._on_revoke = on_revoke or (lambda: None)

    @classmethod
    def open(
        cls, database_url: str, engine: AsyncEngine, on_revoke: Callable[[], None] | None = None
    ) -> SqlSessionStore:
        """The store on its own synchronous engine, beside ``engine`` (whose writer lock it shares)."""
        return cls(ThreadedDatabase(database_url, engine), on_revoke)

    def close(self) -> None:
        """Close its connections and stop its threads."""
        self.db.close()

    async def write(
        self, fn: Callable[[SqlSessionTransaction], T], *, spend: SpendRequest | None = None
    ) -> T:
        """``fn`` in one write transaction on a worker thread: committed if it returns, else rolled
        back. ``spend``: the spend ``fn`` begins with, run ahead when its batch has others."""
        transaction: SqlSessionTransaction | None = None

        def run(conn: Connection) -> T:
            nonlocal transaction
            transaction = SqlSessionTransaction(conn)
            return fn(transaction)

        result = await self.db.write(run, spend=spend)
        if transaction is not None and transaction.revoked:
            self._on_revoke()
        return result

    # --- lookups ------------------------------------------------------------------
    async def get(self, session_id: str) -> SessionRecord | None:
        def tx(conn: Connection) -> SessionRecord | None:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
            return _session(row) if row else None

        return await self.db.read(tx)

    async def token(self, jti: str) -> RefreshTokenRow | None:
        return await self.db.read(lambda conn: SqlSessionTransaction(conn).token(jti))

    async def access_allowed(self, session_id: str | None, jti: str, now: float) -> bool:
        """False if the access token's session ended or the token itself was revoked."""

        def tx(conn: Connection) -> bool:
            revoked = conn.execute(select(exists().where(revoked_access_tokens.c.jti == jti))).scalar()
            if revoked:
                return False
            if session_id is None:
                return True
            row = conn.execute(
                select(sessions.c.revoked_at, sessions.c.expires_at).where(sessions.c.id == session_id)
            ).first()
            return row is not None and row.revoked_at is None and row.expires_at > now

        return await self.db.read(tx)

    async def live_for_user(self, user_id: str, now: float) -> list[SessionRecord]:
        """Sessions that can still be refreshed: not ended, with an unspent, unexpired token."""
        refreshable = exists().where(
            refresh_tokens.c.session_id == sessions.c.id,
            refresh_tokens.c.spent_at.is_(None),
            refresh_tokens.c.expires_at > now,
        )
        query = (
            select(sessions)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
                refreshable,
            )
            .order_by(sessions.c.created_at)
        )
        return await self.db.read(lambda conn: [_session(r) for r in conn.execute(query).all()])

    # --- revocation ---------------------------------------------------------------
    async def revoke(self, session_id: str, now: float, reason: str) -> bool:
        statement = revoke_sessions(sessions.c.id == session_id, now, reason)
        rowcount = await self.db.write(lambda conn: conn.execute(statement).rowcount)
        self._on_revoke()
        return rowcount > 0

    async def revoke_user(self, user_id: str, now: float, reason: str) -> int:
        """End every session of the user, and every browser session (SSO) of theirs."""
        statement = revoke_sessions(sessions.c.user_id == user_id, now, reason)
        browsers = (
            update(browser_sessions)
            .where(browser_sessions.c.user_id == user_id, browser_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

        def tx(conn: Connection) -> int:
            conn.execute(browsers)
            return int(conn.execute(statement).rowcount)

        rowcount = await self.db.write(tx)
        self._on_revoke()
        return rowcount

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        statement = insert(revoked_access_tokens).values(jti=jti, expires_at=expires_at)
        with contextlib.suppress(IntegrityError):  # already revoked
            await self.db.write(lambda conn: conn.execute(statement))
        self._on_revoke()

    # --- housekeeping -------------------------------------------------------------
    async def drop_grace_bodies(self, now: float) -> int:
        """Forget stored responses whose grace has ended (they hold live tokens)."""
        return int(await self.db.write(lambda conn: _drop_ended_grace(conn, now)))

    async def prune(self, now: float) -> dict[str, int]:
        """Delete rows nothing can use any more; drop grace bodies past their window."""

        def tx(conn: Connection) -> dict[str, int]:
            counts: dict[str, int] = {"grace_bodies": _drop_ended_grace(conn, now)}
            result = conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now))
            counts["refresh_tokens"] = result.rowcount
            has_tokens = exists().where(refresh_tokens.c.session_id == sessions.c.id)
            result = conn.execute(
                delete(sessions).where(
                    (sessions.c.expires_at <= now) | and_(sessions.c.revoked_at.is_not(None), ~has_tokens)
                )
            )
            counts["sessions"] = result.rowcount
            result = conn.execute(
                delete(revoked_access_tokens).where(revoked_access_tokens.c.expires_at <= now)
            )
            counts["revoked_access_tokens"] = result.rowcount
            return counts

        return await self.db.write(tx)


def _drop_ended_grace(conn: Connection, now: float) -> int:
    result = conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.grace_body.is_not(None), refresh_tokens.c.grace_until <= now)
        .values(grace_body=None)
    )
    return int(result.rowcount)
