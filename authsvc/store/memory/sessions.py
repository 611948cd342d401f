"""Sessions, refresh-token rows and revocations in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from authsvc.store.memory.tables import MemoryDatabase, Tables, revoke_where
from authsvc.store.records import IssuedRefreshToken, RefreshTokenRow, SessionRecord, SpendRequest, SpentToken

__all__ = ["MemorySessionStore", "MemorySessionTransaction"]

T = TypeVar("T")


class MemorySessionTransaction:
    """``authsvc.tokens.families.SessionTransaction`` over the tables."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def insert_session(self, session: SessionRecord) -> None:
        if session.user_id not in self.t.users:
            raise KeyError("no such user")  # the foreign key
        self.t.sessions[session.id] = session

    def user_credentials(self, user_id: str) -> tuple[int, bool] | None:
        user = self.t.users.get(user_id)
        return None if user is None else (user.credentials_version, user.disabled)

    def client_live(self, client_id: str) -> bool:
        return client_id in self.t.clients

    def insert_token(self, token: IssuedRefreshToken, session: SessionRecord) -> None:
        if token.jti in self.t.tokens:
            raise KeyError("duplicate jti")  # the primary key
        self.t.tokens[token.jti] = RefreshTokenRow(
            jti=token.jti,
            session_id=session.id,
            client_id=session.client_id,
            kid=token.kid,
            issued_at=token.issued_at,
            expires_at=token.expires_at,
            spent_at=None,
            successor_jti=None,
            grace_body=None,
            grace_until=None,
            digest=token.digest,
        )

    def spend(self, request: SpendRequest) -> SpentToken | None:
        jti, now = request.jti, request.now
        row = self.t.tokens.get(jti)
        if (
            row is None
            or row.spent_at is not None
            or row.client_id != request.client_id
            or row.expires_at <= now
        ):
            return None
        if row.digest is not None and row.digest != request.digest:
            return None
        self.t.tokens[jti] = replace(row, spent_at=now, successor_jti=request.successor_jti)
        return SpentToken(row.session_id, row.digest, self.session_and_user_disabled(row.session_id))

    def session_and_user_disabled(self, session_id: str) -> tuple[SessionRecord, bool] | None:
        session = self.t.sessions.get(session_id)
        user = self.t.users.get(session.user_id) if session is not None else None
        return None if session is None or user is None else (session, user.disabled)

    def token(self, jti: str) -> RefreshTokenRow | None:
        return self.t.tokens.get(jti)

    def is_unspent(self, jti: str) -> bool:
        row = self.t.tokens.get(jti)
        return row is None or row.spent_at is None

    def keep_grace_body(self, jti: str, body: str, until: float) -> None:
        self.t.tokens[jti] = replace(self.t.tokens[jti], grace_body=body, grace_until=until)

    def drop_grace_bodies(self, session_id: str, keep: str | None = None) -> None:
        for row in list(self.t.tokens.values()):
            if row.session_id == session_id and row.grace_body is not None and row.jti != keep:
                self.t.tokens[row.jti] = replace(row, grace_body=None)

    def revoke_session(self, session_id: str, now: float, reason: str) -> None:
        revoke_where(self.t, lambda s: s.id == session_id, now, reason)


class MemorySessionStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def write(
        self, fn: Callable[[MemorySessionTransaction], T], *, spend: SpendRequest | None = None
    ) -> T:
        # ``spend``: nothing to gain by running it ahead; ``fn`` spends as it goes.
        return await self.db.transaction(lambda t: fn(MemorySessionTransaction(t)))

    async def get(self, session_id: str) -> SessionRecord | None:
        return self.db.tables.sessions.get(session_id)

    async def token(self, jti: str) -> RefreshTokenRow | None:
        return self.db.tables.tokens.get(jti)

    async def access_allowed(self, session_id: str | None, jti: str, now: float) -> bool:
        if jti in self.db.tables.revoked_access:
            return False
        if session_id is None:
            return True
        session = self.db.tables.sessions.get(session_id)
        return session is not None and session.revoked_at is None and session.expires_at > now

    async def live_for_user(self, user_id: str, now: float) -> list[SessionRecord]:
        t = self.db.tables
        refreshable = {
            row.session_id for row in t.tokens.values() if row.spent_at is None and row.expires_at > now
        }
        return sorted(
            (
                s
                for s in t.sessions.values()
                if s.user_id == user_id
                and s.revoked_at is None
                and s.expires_at > now
                and s.id in refreshable
            ),
            key=lambda s: s.created_at,
        )

    async def revoke(self, session_id: str, now: float, reason: str) -> bool:
        return bool(
            await self.db.transaction(lambda t: revoke_where(t, lambda s: s.id == session_id, now, reason))
        )

    async def revoke_user(self, user_id: str, now: float, reason: str) -> int:
        return await self.db.transaction(
            lambda t: revoke_where(t, lambda s: s.user_id == user_id, now, reason)
        )

    async def revoke_access_token(self, jti: str, expires_at: float) -> None:
        def tx(t: Tables) -> None:
            t.revoked_access.setdefault(jti, expires_at)

        await self.db.transaction(tx)

    async def drop_grace_bodies(self, now: float) -> int:
        return await self.db.transaction(lambda t: _drop_ended_grace(t, now))

    async def prune(self, now: float) -> dict[str, int]:
        def tx(t: Tables) -> dict[str, int]:
            counts = {"grace_bodies": _drop_ended_grace(t, now)}
            expired = [jti for jti, row in t.tokens.items() if row.expires_at <= now]
            for jti in expired:
                del t.tokens[jti]
            counts["refresh_tokens"] = len(expired)
            with_tokens = {row.session_id for row in t.tokens.values()}
            gone = [
                s.id
                for s in t.sessions.values()
                if s.expires_at <= now or (s.revoked_at is not None and s.id not in with_tokens)
            ]
            for sid in gone:
                del t.sessions[sid]
            counts["sessions"] = len(gone)
            revoked = [jti for jti, until in t.revoked_access.items() if until <= now]
            for jti in revoked:
                del t.revoked_access[jti]
            counts["revoked_access_tokens"] = len(revoked)
            return counts

        return await self.db.transaction(tx)


def _drop_ended_grace(t: Tables, now: float) -> int:
    ended = [
        row
        for row in t.tokens.values()
        if row.grace_body is not None and row.grace_until is not None and row.grace_until <= now
    ]
    for row in ended:
        t.tokens[row.jti] = replace(row, grace_body=None)
    return len(ended)
