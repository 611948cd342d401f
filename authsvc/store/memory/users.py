"""Users in memory."""

from __future__ import annotations

from dataclasses import replace

from authsvc.store.memory.tables import MemoryDatabase, Tables, revoke_where
from authsvc.store.records import User
from authsvc.store.sql.users import DuplicateUser, new_user_id

__all__ = ["MemoryUserStore"]


class MemoryUserStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def by_username(self, username: str) -> User | None:
        return next((u for u in self.db.tables.users.values() if u.username == username), None)

    async def by_id(self, user_id: str) -> User | None:
        return self.db.tables.users.get(user_id)

    async def list(self) -> list[User]:
        return sorted(self.db.tables.users.values(), key=lambda u: u.username)

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
        user = User(new_user_id(), username, password_hash, False, scopes, email, full_name)

        def tx(t: Tables) -> User:
            if username_key in t.username_keys or any(u.username == username for u in t.users.values()):
                raise DuplicateUser(username)
            t.users[user.id] = user
            t.username_keys[username_key] = user.id
            return user

        return await self.db.transaction(tx)

    async def change_credentials(
        self,
        user_id: str,
        now: float,
        reason: str,
        *,
        password_hash: str | None = None,
        disable: bool = False,
    ) -> int:
        def tx(t: Tables) -> int:
            user = t.users.get(user_id)
            if user is not None:
                t.users[user_id] = replace(
                    user,
                    credentials_version=user.credentials_version + 1,
                    password_hash=password_hash if password_hash is not None else user.password_hash,
                    disabled=True if disable else user.disabled,
                )
            return revoke_where(t, lambda s: s.user_id == user_id, now, reason)

        return await self.db.transaction(tx)

    async def set_disabled(self, username: str, disabled: bool, now: float) -> User | None:
        def tx(t: Tables) -> User | None:
            for user in t.users.values():
                if user.username == username:
                    bump = 1 if disabled else 0
                    changed = replace(
                        user, disabled=disabled, credentials_version=user.credentials_version + bump
                    )
                    t.users[user.id] = changed
                    return changed
            return None

        return await self.db.transaction(tx)

    async def set_password_hash(self, user_id: str, password_hash: str, now: float) -> None:
        def tx(t: Tables) -> None:
            user = t.users.get(user_id)
            if user is not None:
                t.users[user_id] = replace(
                    user, password_hash=password_hash, credentials_version=user.credentials_version + 1
                )

        await self.db.transaction(tx)

    async def replace_hash(self, user_id: str, old_hash: str, new_hash: str, now: float) -> None:
        def tx(t: Tables) -> None:
            user = t.users.get(user_id)
            if user is not None and user.password_hash == old_hash:
                t.users[user_id] = replace(user, password_hash=new_hash)

        await self.db.transaction(tx)
