"""Users in SQL."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.records import User
from authsvc.store.sql.engine import write_transaction
from authsvc.store.sql.sessions import revoke_sessions
from authsvc.store.sql.tables import sessions, users

__all__ = ["DuplicateUser", "SqlUserStore", "new_user_id"]


class DuplicateUser(Exception):
    """The username (or a look-alike of it) is taken."""


def new_user_id() -> str:
    """An opaque, never reused subject identifier."""
    return "u_" + secrets.token_urlsafe(16)


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        id=m["id"],
        username=m["username"],
        password_hash=m["password_hash"],
        disabled=bool(m["disabled"]),
        scopes=frozenset(m["scopes"].split()),
        email=m["email"],
        full_name=m["full_name"],
        credentials_version=int(m["credentials_version"]),
    )


class SqlUserStore:
    def __init__(self, engine: AsyncEngine, on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self._on_change = on_change or (lambda: None)  # forget cached users and sessions at once

    async def by_username(self, username: str) -> User | None:
        """The user whose (already PRECIS-mapped) name is ``username``."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def list(self) -> list[User]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def add(
        self,
        username: str,
        password_hash: str,
        now: float,
        *,
        username_key: str,
        scopes: frozenset[str] = frozenset(),
        email: str | None = None,
        full_name: str | None = None,
    ) -> User:
        """A new user; DuplicateUser if the name or its look-alike key is taken (unique indexes)."""
        user = User(new_user_id(), username, password_hash, False, scopes, email, full_name)
        try:
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    insert(users).values(
                        id=user.id,
                        username=username,
                        username_key=username_key,
                        password_hash=password_hash,
                        disabled=False,
                        scopes=" ".join(sorted(scopes)),
                        email=email,
                        full_name=full_name,
                        created_at=now,
                        updated_at=now,
                        credentials_version=0,
                    )
                )
        except IntegrityError:
            raise DuplicateUser(username) from None
        return user

    async def change_credentials(
        self,
        user_id: str,
        now: float,
        reason: str,
        *,
        password_hash: str | None = None,
        disable: bool = False,
    ) -> int:
        """A new password and/or disabling, and the end of every session, in one transaction.

        The credentials version is bumped first: a login that checked the old
        credentials either wrote its session before this (and the revocation
        below ends it) or finds the new version when it writes (and writes
        nothing). Returns how many sessions were revoked.
        """
        changes: dict[str, object] = {
            "credentials_version": users.c.credentials_version + 1,
            "updated_at": now,
        }
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if disable:
            changes["disabled"] = True
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(**changes))
            result = await conn.execute(revoke_sessions(sessions.c.user_id == user_id, now, reason))
        self._on_change()
        return int(result.rowcount)

    async def update_profile(
        self,
        user_id: str,
        now: float,
        *,
        scopes: frozenset[str] | None = None,
        email: str | None = None,
        full_name: str | None = None,
    ) -> bool:
        """Write the profile fields given (None: kept), in one statement."""
        changes: dict[str, object] = {"updated_at": now}
        if scopes is not None:
            changes["scopes"] = " ".join(sorted(scopes))
        if email is not None:
            changes["email"] = email or None  # "" clears it
        if full_name is not None:
            changes["full_name"] = full_name or None
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(update(users).where(users.c.id == user_id).values(**changes))
        self._on_change()
        return bool(result.rowcount)

    async def delete(self, user_id: str) -> bool:
        """Remove the user; their sessions, tokens, consents and browser sessions go with the row
        (foreign keys). Their ``sub`` is never issued again: ids are random."""
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(delete(users).where(users.c.id == user_id))
        self._on_change()
        return bool(result.rowcount)

    async def set_disabled(self, username: str, disabled: bool, now: float) -> User | None:
        """Set the flag alone (enabling, or an outside disable); ``change_credentials`` disables and
        ends the sessions. Disabling still bumps the credentials version: no login survives it."""
        changes: dict[str, object] = {"disabled": disabled, "updated_at": now}
        if disabled:
            changes["credentials_version"] = users.c.credentials_version + 1
        async with write_transaction(self.engine) as conn:
            await conn.execute(update(users).where(users.c.username == username).values(**changes))
        self._on_change()
        return await self.by_username(username)

    async def set_password_hash(self, user_id: str, password_hash: str, now: float) -> None:
        """Store a hash as it is (imports, tests); ``change_credentials`` is the password change."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    password_hash=password_hash,
                    credentials_version=users.c.credentials_version + 1,
                    updated_at=now,
                )
            )
        self._on_change()

    async def replace_hash(self, user_id: str, old_hash: str, new_hash: str, now: float) -> None:
        """Re-hash on login, unless the password changed meanwhile (the same credential: no new version)."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.password_hash == old_hash)
                .values(password_hash=new_hash, updated_at=now)
            )
