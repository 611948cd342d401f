"""Browser sign-in state in SQL: browser sessions, consents, pending requests, codes.

Every handle a browser or client holds (the session cookie, an interaction, a
``request_uri``, a code) is stored as its SHA-256 (``records.*.id``): a copy
of the database lets no one act as a signed-in browser or redeem a code.

Single use is a compare-and-set: a code is marked used only if it was unused,
a pushed request is deleted as it is taken. A second redemption of a code marks
it and revokes the family the first opened; if the first has not recorded its
family yet, it finds the mark when it tries (``code_claim``, in the transaction
that would open the family) and opens none (RFC 6749 §4.1.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, bindparam, delete, insert, select, update

from authsvc.store.protocols import Claim, SessionTransaction
from authsvc.store.records import AuthorizationCode, BrowserSession, Consent, PendingRequest, SessionRecord
from authsvc.store.sql.prepared import Prepared
from authsvc.store.sql.sessions import SqlSessionTransaction, revoke_sessions
from authsvc.store.sql.tables import (
    authorization_codes,
    browser_sessions,
    consents,
    pending_requests,
    sessions,
)
from authsvc.store.sql.threaded import ThreadedDatabase

__all__ = ["REUSED", "CodeRedeemedMeanwhile", "SignInEnded", "SqlBrowserStore"]

R = TypeVar("R")

#: What a code's ``session_id`` holds once a second redemption has been seen.
REUSED = "!reused"


class SignInEnded(Exception):
    """The browser session behind a code ended (a logout) before its family was opened."""


class CodeRedeemedMeanwhile(Exception):
    """A second redemption of the code came before the first had opened its family."""


def _browser_session(row: object) -> BrowserSession:
    m = row._mapping  # type: ignore[attr-defined]
    return BrowserSession(**{c.name: m[c.name] for c in browser_sessions.columns})


_CODE_COLUMNS = tuple(c.name for c in authorization_codes.columns)


def _code(row: Sequence[Any]) -> AuthorizationCode:
    """A code from a row of every column in table order (SQLAlchemy's or the driver's)."""
    return AuthorizationCode(**dict(zip(_CODE_COLUMNS, row, strict=True)))


# A redemption's statements, built once and run on the driver (``Prepared``).
_USE_CODE = Prepared(
    update(authorization_codes)
    .where(authorization_codes.c.id == bindparam("p_id"), authorization_codes.c.used_at.is_(None))
    .values(used_at=bindparam("p_now"))
    .returning(*authorization_codes.columns)
)
_LIVE_BROWSER_SESSION = Prepared(
    select(browser_sessions.c.id)
    .where(browser_sessions.c.id == bindparam("p_id"), browser_sessions.c.revoked_at.is_(None))
    .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite holds its write lock already
)
_NOTE_FAMILY = Prepared(
    update(authorization_codes)
    .where(authorization_codes.c.id == bindparam("p_code_id"), authorization_codes.c.session_id.is_(None))
    .values(session_id=bindparam("p_session_id"))
    .returning(authorization_codes.c.id)
)


class SqlBrowserStore:
    def __init__(self, db: ThreadedDatabase, on_revoke: Callable[[], None] | None = None) -> None:
        self.db = db
        self._on_revoke = on_revoke or (lambda: None)

    # --- browser sessions -----------------------------------------------------------
    async def add_browser_session(self, session: BrowserSession) -> None:
        values = {c.name: getattr(session, c.name) for c in browser_sessions.columns}
        await self.db.write(lambda conn: conn.execute(insert(browser_sessions).values(**values)))

    async def browser_session(self, session_id: str) -> BrowserSession | None:
        query = select(browser_sessions).where(browser_sessions.c.id == session_id)
        return await self.db.read(lambda conn: _first(conn, query, _browser_session))

    async def end_browser_session(self, session_id: str, now: float) -> int:
        """End a browser session and every family its sign-ins opened; how many families."""

        def tx(conn: Connection) -> int:
            conn.execute(
                update(browser_sessions)
                .where(browser_sessions.c.id == session_id, browser_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            result = conn.execute(revoke_sessions(sessions.c.browser_session_id == session_id, now, "logout"))
            return int(result.rowcount)

        count = await self.db.write(tx)
        self._on_revoke()
        return count

    async def end_user_browser_sessions(self, user_id: str, now: float) -> int:
        statement = (
            update(browser_sessions)
            .where(browser_sessions.c.user_id == user_id, browser_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(await self.db.write(lambda conn: conn.execute(statement).rowcount))

    # --- consents ---------------------------------------------------------------------
    async def consent(self, user_id: str, client_id: str) -> Consent | None:
        query = select(consents).where(consents.c.user_id == user_id, consents.c.client_id == client_id)
        return await self.db.read(lambda conn: _first(conn, query, _consent))

    async def consents(self, user_id: str) -> list[Consent]:
        query = select(consents).where(consents.c.user_id == user_id).order_by(consents.c.client_id)
        return await self.db.read(lambda conn: [_consent(row) for row in conn.execute(query).all()])

    async def grant_consent(self, user_id: str, client_id: str, scopes: frozenset[str], now: float) -> None:
        """Remember ``scopes`` for the pair, added to what was granted before."""

        def tx(conn: Connection) -> None:
            where = (consents.c.user_id == user_id, consents.c.client_id == client_id)
            row = conn.execute(select(consents.c.scopes).where(*where).with_for_update()).first()
            if row is None:
                conn.execute(
                    insert(consents).values(
                        user_id=user_id, client_id=client_id, scopes=_words(scopes), granted_at=now
                    )
                )
            else:
                merged = frozenset(row.scopes.split()) | scopes
                conn.execute(update(consents).where(*where).values(scopes=_words(merged), granted_at=now))

        await self.db.write(tx)

    async def revoke_consent(self, user_id: str, client_id: str) -> bool:
        statement = delete(consents).where(consents.c.user_id == user_id, consents.c.client_id == client_id)
        return bool(await self.db.write(lambda conn: conn.execute(statement).rowcount))

    # --- pending requests (interactions, PAR) -----------------------------------------
    async def add_pending(self, request: PendingRequest) -> None:
        values = {c.name: getattr(request, c.name) for c in pending_requests.columns}
        await self.db.write(lambda conn: conn.execute(insert(pending_requests).values(**values)))

    async def pending(self, request_id: str, kind: str, now: float) -> PendingRequest | None:
        query = select(pending_requests).where(
            pending_requests.c.id == request_id,
            pending_requests.c.kind == kind,
            pending_requests.c.expires_at > now,
        )
        return await self.db.read(lambda conn: _first(conn, query, _pending))

    async def replace_pending(self, request_id: str, parameters: str) -> None:
        statement = (
            update(pending_requests).where(pending_requests.c.id == request_id).values(parameters=parameters)
        )
        await self.db.write(lambda conn: conn.execute(statement))

    async def take_pending(self, request_id: str, kind: str, now: float) -> PendingRequest | None:
        """The request, deleted as it is read (single use); None if unknown, used or expired."""
        statement = (
            delete(pending_requests)
            .where(pending_requests.c.id == request_id, pending_requests.c.kind == kind)
            .returning(*pending_requests.columns)
        )

        def tx(conn: Connection) -> PendingRequest | None:
            row = conn.execute(statement).first()
            return _pending(row) if row is not None and row.expires_at > now else None

        return await self.db.write(tx)

    # --- codes ------------------------------------------------------------------------
    async def add_code(self, code: AuthorizationCode) -> None:
        values = {c.name: getattr(code, c.name) for c in authorization_codes.columns}
        await self.db.write(lambda conn: conn.execute(insert(authorization_codes).values(**values)))

    async def use_code(self, code_id: str, now: float) -> tuple[AuthorizationCode | None, bool]:
        """(the code, True) if it was unused and is now used; (the code or None, False) otherwise.

        A code used before is a reuse: its family is revoked here, or marked for
        the first redemption, which then opens no family (``code_claim``).
        """

        def tx(conn: Connection) -> tuple[AuthorizationCode | None, bool]:
            rows = _USE_CODE.run(conn, {"p_id": code_id, "p_now": now})
            if rows:
                return _code(rows[0]), True
            found = conn.execute(
                select(authorization_codes).where(authorization_codes.c.id == code_id).with_for_update()
            ).first()
            if found is None:
                return None, False
            code = _code(found)
            if code.session_id is None:
                conn.execute(
                    update(authorization_codes)
                    .where(authorization_codes.c.id == code_id)
                    .values(session_id=REUSED)
                )
            elif code.session_id != REUSED:
                conn.execute(revoke_sessions(sessions.c.id == code.session_id, now, "code_reuse"))
            return code, False

        result = await self.db.write(tx)
        if result[0] is not None and not result[1]:
            self._on_revoke()
        return result

    def code_claim(self, code_id: str, browser_session_id: str) -> Claim:
        """What redeeming a code must do inside the transaction that opens its family.

        The browser session is read share-locked (a logout either ended it first, or
        waits and then ends the family too), and the family is noted on the code only
        if no second redemption marked it meanwhile. Either failing raises, and the
        family is never written: ``SignInEnded``, ``CodeRedeemedMeanwhile``.
        """

        def claim(tx: SessionTransaction, session: SessionRecord) -> None:
            if not isinstance(tx, SqlSessionTransaction):
                raise TypeError("a code is claimed in a SQL session transaction")
            if not _LIVE_BROWSER_SESSION.run(tx.conn, {"p_id": browser_session_id}):
                raise SignInEnded
            if not _NOTE_FAMILY.run(tx.conn, {"p_code_id": code_id, "p_session_id": session.id}):
                raise CodeRedeemedMeanwhile

        return claim

    # --- housekeeping -----------------------------------------------------------------
    async def prune(self, now: float, code_memory: float) -> dict[str, int]:
        """Delete what has expired. Used codes are kept ``code_memory`` seconds past their
        expiry so that a late second redemption still revokes the first one's tokens."""

        def tx(conn: Connection) -> dict[str, int]:
            return {
                "pending_requests": conn.execute(
                    delete(pending_requests).where(pending_requests.c.expires_at <= now)
                ).rowcount,
                "authorization_codes": conn.execute(
                    delete(authorization_codes).where(authorization_codes.c.expires_at <= now - code_memory)
                ).rowcount,
                "browser_sessions": conn.execute(
                    delete(browser_sessions).where(browser_sessions.c.expires_at <= now)
                ).rowcount,
            }

        return await self.db.write(tx)


def _first(conn: Connection, query: Select[Any], convert: Callable[[object], R]) -> R | None:
    row = conn.execute(query).first()
    return convert(row) if row is not None else None


def _consent(row: object) -> Consent:
    m = row._mapping  # type: ignore[attr-defined]
    return Consent(
        user_id=m["user_id"],
        client_id=m["client_id"],
        scopes=frozenset(m["scopes"].split()),
        granted_at=m["granted_at"],
    )


def _pending(row: object) -> PendingRequest:
    m = row._mapping  # type: ignore[attr-defined]
    return PendingRequest(**{c.name: m[c.name] for c in pending_requests.columns})


def _words(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))
