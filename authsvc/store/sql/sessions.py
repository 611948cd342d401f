"""Sessions (refresh-token families), refresh-token rows and revocations in SQL.

The refresh rotation is a compare-and-set: the transaction's first statement
marks the presented token spent only if it is still unspent, so of N
concurrent refreshes exactly one sees ``rowcount == 1`` — on SQLite (the
first write takes the database's write lock) and on PostgreSQL (the row lock
makes the losers re-check ``spent_at``) alike, across processes.

Each public method is one transaction run on a worker thread
(``ThreadedDatabase``); the hot path's statements are built once, with bind
parameters, so a refresh pays neither the per-statement async round trips
nor SQLAlchemy's statement construction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, and_, bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.records import RefreshTokenRow, SessionRecord
from authsvc.store.sql.tables import clients, refresh_tokens, revoked_access_tokens, sessions, users
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["NewRefreshToken", "RotateOutcome", "RotateResult", "SqlSessionStore"]


@dataclass(frozen=True, slots=True)
class NewRefreshToken:
    """What the caller minted for a successor, and the response that carries it."""

    jti: str
    kid: str
    issued_at: float
    expires_at: float
    body: str


class RotateOutcome(StrEnum):
    ROTATED = "rotated"  # the token was spent now; body is the new response
    REPLAYED = "replayed"  # a retry inside the grace window; body is the first response
    REUSED = "reused"  # a spent token came back: the family is now revoked
    INVALID = "invalid"  # unknown, expired, revoked or another client's


@dataclass(frozen=True, slots=True)
class RotateResult:
    outcome: RotateOutcome
    body: str | None = None
    session_id: str | None = None
    reason: str = ""


class _StaleLogin(Exception):
    """The user or client changed after the login read them; the transaction rolls back."""


class _SessionEnded(Exception):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


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
    )


def _token(row: object) -> RefreshTokenRow:
    m = row._mapping  # type: ignore[attr-defined]
    return RefreshTokenRow(**{c.name: m[c.name] for c in refresh_tokens.columns})


# The hot path's statements, built once (bind parameters are prefixed ``p_``).
_SPEND = (
    update(refresh_tokens)
    .where(
        refresh_tokens.c.jti == bindparam("p_jti"),
        refresh_tokens.c.spent_at.is_(None),
        refresh_tokens.c.client_id == bindparam("p_client_id"),
        refresh_tokens.c.expires_at > bindparam("p_now"),
    )
    .values(spent_at=bindparam("p_spent_at"), successor_jti=bindparam("p_successor_jti"))
    .returning(refresh_tokens.c.session_id)
)
_SESSION_AND_USER = (
    select(sessions, users.c.disabled)
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == bindparam("p_session_id"))
)
_USER_CREDENTIALS = (
    select(users.c.credentials_version, users.c.disabled)
    .where(users.c.id == bindparam("p_user_id"))
    .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite holds its write lock already
)
_LIVE_CLIENT = (
    select(clients.c.client_id)
    .where(clients.c.client_id == bindparam("p_client_id"), clients.c.removed_at.is_(None))
    .with_for_update(read=True)
)
_INSERT_TOKEN = insert(refresh_tokens)
_INSERT_SESSION = insert(sessions)


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

    async def create(
        self,
        session: SessionRecord,
        first: Callable[[SessionRecord], NewRefreshToken],
        *,
        credentials_version: int,
        registered_client: bool,
    ) -> NewRefreshToken | None:
        """Start a family and record its first refresh token, atomically; None if the
        user's credentials or the client changed since the login read them.

        The session row is written first, then the user (and a registered client)
        is re-read under a share lock: a password change, disable or client removal
        either committed before (the versions differ: nothing is written) or waits
        for this transaction and then revokes the session it wrote. On SQLite the
        first write already holds the database's write lock. ``first`` runs on the
        worker thread, inside the transaction.
        """

        def tx(conn: Connection) -> NewRefreshToken:
            conn.execute(
                _INSERT_SESSION,
                {
                    "id": session.id,
                    "user_id": session.user_id,
                    "client_id": session.client_id,
                    "scope": session.scope,
                    "created_at": session.created_at,
                    "expires_at": session.expires_at,
                },
            )
            user = conn.execute(_USER_CREDENTIALS, {"p_user_id": session.user_id}).first()
            if user is None or user.disabled or user.credentials_version != credentials_version:
                raise _StaleLogin
            if registered_client and conn.execute(
                _LIVE_CLIENT, {"p_client_id": session.client_id}
            ).first() is None:
                raise _StaleLogin
            token = first(session)
            self._insert_token(conn, token, session)
            return token

        try:
            return await self.db.write(tx)
        except _StaleLogin:
            return None

    @staticmethod
    def _insert_token(conn: Connection, token: NewRefreshToken, session: SessionRecord) -> None:
        conn.execute(
            _INSERT_TOKEN,
            {
                "jti": token.jti,
                "session_id": session.id,
                "client_id": session.client_id,
                "kid": token.kid,
                "issued_at": token.issued_at,
                "expires_at": token.expires_at,
            },
        )

    async def rotate(
        self,
        jti: str,
        client_id: str,
        now: float,
        grace: int,
        successor: Callable[[SessionRecord], NewRefreshToken],
        successor_jti: str | None = None,
    ) -> RotateResult:
        """Spend ``jti`` and record its successor, or tell why not.

        ``successor`` runs on the worker thread, inside the transaction: it must
        only compute (sign and serialise), never touch shared state.
        ``successor_jti``, when the caller knows it in advance, is recorded by
        the compare-and-set itself, saving a statement on the hot path.
        """

        def tx(conn: Connection) -> RotateResult:
            return self._rotate(conn, jti, client_id, now, grace, successor, successor_jti)

        try:
            result = await self.db.write(tx)
        except _SessionEnded as ended:
            return RotateResult(RotateOutcome.INVALID, session_id=ended.session_id, reason="session ended")
        if result.outcome is RotateOutcome.REUSED:
            self._on_revoke()
        return result

    def _rotate(
        self,
        conn: Connection,
        jti: str,
        client_id: str,
        now: float,
        grace: int,
        successor: Callable[[SessionRecord], NewRefreshToken],
        successor_jti: str | None,
    ) -> RotateResult:
        session_id = conn.execute(
            _SPEND,
            {
                "p_jti": jti,
                "p_client_id": client_id,
                "p_now": now,
                "p_spent_at": now,
                "p_successor_jti": successor_jti,
            },
        ).scalar_one_or_none()
        if session_id is None:
            return self._not_spent_now(conn, jti, client_id, now)
        row = conn.execute(_SESSION_AND_USER, {"p_session_id": session_id}).first()
        if row is None:
            raise _SessionEnded(session_id)  # its user is gone; rolls the spend back
        session = _session(row)
        if session.revoked_at is not None or session.expires_at <= now or row.disabled:
            raise _SessionEnded(session.id)  # rolls the spend back
        token = successor(session)
        if successor_jti is not None and token.jti != successor_jti:
            raise ValueError("the successor must carry the announced jti")
        self._insert_token(conn, token, session)
        if successor_jti is None or grace > 0:
            # Older generations can never be replayed now (their successors are
            # spent): their stored bodies go at once rather than at the next prune.
            self._drop_grace_bodies(conn, session.id, keep=jti)
            conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.jti == jti)
                .values(
                    successor_jti=token.jti,
                    grace_body=token.body if grace > 0 else None,
                    grace_until=now + grace if grace > 0 else None,
                )
            )
        return RotateResult(RotateOutcome.ROTATED, body=token.body, session_id=session.id)

    def _not_spent_now(self, conn: Connection, jti: str, client_id: str, now: float) -> RotateResult:
        row = conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti)).first()
        if row is None:
            return RotateResult(RotateOutcome.INVALID, reason="unknown refresh token")
        token = _token(row)
        if token.client_id != client_id:
            return RotateResult(RotateOutcome.INVALID, session_id=token.session_id, reason="other client")
        if token.spent_at is None:
            return RotateResult(RotateOutcome.INVALID, session_id=token.session_id, reason="expired")
        session_row = conn.execute(select(sessions).where(sessions.c.id == token.session_id)).first()
        if session_row is None or self._ended(conn, _session(session_row), now):
            return RotateResult(RotateOutcome.INVALID, session_id=token.session_id, reason="session ended")
        if (
            token.grace_body is not None
            and token.grace_until is not None
            and now < token.grace_until
            and token.successor_jti is not None
            and self._unspent(conn, token.successor_jti)
        ):
            return RotateResult(RotateOutcome.REPLAYED, body=token.grace_body, session_id=token.session_id)
        conn.execute(
            update(sessions)
            .where(sessions.c.id == token.session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="reuse")
        )
        self._drop_grace_bodies(conn, token.session_id)
        return RotateResult(RotateOutcome.REUSED, session_id=token.session_id, reason="reuse")

    @staticmethod
    def _drop_grace_bodies(conn: Connection, session_id: str, keep: str | None = None) -> None:
        where = [refresh_tokens.c.session_id == session_id, refresh_tokens.c.grace_body.is_not(None)]
        if keep is not None:
            where.append(refresh_tokens.c.jti != keep)
        conn.execute(update(refresh_tokens).where(*where).values(grace_body=None))

    @staticmethod
    def _ended(conn: Connection, session: SessionRecord, now: float) -> bool:
        """Revoked, past its absolute limit, or its user is disabled or gone.

        Disabling through the CLI revokes the sessions too; this check keeps a
        disabled user from refreshing whatever path disabled them.
        """
        if session.revoked_at is not None or session.expires_at <= now:
            return True
        disabled = conn.execute(
            select(users.c.disabled).where(users.c.id == session.user_id)
        ).scalar_one_or_none()
        return disabled is None or bool(disabled)

    @staticmethod
    def _unspent(conn: Connection, jti: str) -> bool:
        spent_at = conn.execute(
            select(refresh_tokens.c.spent_at).where(refresh_tokens.c.jti == jti)
        ).scalar_one_or_none()
        return spent_at is None

    # --- lookups ------------------------------------------------------------------
    async def get(self, session_id: str) -> SessionRecord | None:
        def tx(conn: Connection) -> SessionRecord | None:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
            return _session(row) if row else None

        return await self.db.read(tx)

    async def token(self, jti: str) -> RefreshTokenRow | None:
        def tx(conn: Connection) -> RefreshTokenRow | None:
            row = conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti)).first()
            return _token(row) if row else None

        return await self.db.read(tx)

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
        statement = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        rowcount = await self.db.write(lambda conn: conn.execute(statement).rowcount)
        self._on_revoke()
        return rowcount > 0

    async def revoke_user(self, user_id: str, now: float, reason: str) -> int:
        statement = (
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        rowcount: int = await self.db.write(lambda conn: conn.execute(statement).rowcount)
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
        statement = (
            update(refresh_tokens)
            .where(refresh_tokens.c.grace_body.is_not(None), refresh_tokens.c.grace_until <= now)
            .values(grace_body=None)
        )
        return int(await self.db.write(lambda conn: conn.execute(statement).rowcount))

    async def prune(self, now: float) -> dict[str, int]:
        """Delete rows nothing can use any more; drop grace bodies past their window."""

        def tx(conn: Connection) -> dict[str, int]:
            counts: dict[str, int] = {}
            result = conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.grace_until <= now, refresh_tokens.c.grace_body.is_not(None))
                .values(grace_body=None)
            )
            counts["grace_bodies"] = result.rowcount
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
