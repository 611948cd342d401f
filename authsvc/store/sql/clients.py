"""OAuth clients and used client-assertion ids in SQL."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.records import Client, ClientChanges
from authsvc.store.sql.engine import write_transaction
from authsvc.store.sql.sessions import revoke_sessions
from authsvc.store.sql.tables import client_assertions, clients, sessions

__all__ = ["DuplicateClient", "SqlClientStore"]


class DuplicateClient(Exception):
    """The client id is taken, by a live client or by a removed one (ids are never revived)."""

    def __init__(self, client_id: str, *, removed: bool) -> None:
        super().__init__(client_id)
        self.removed = removed


def _columns(changes: ClientChanges) -> dict[str, object]:
    """The column values of the fields a change sets."""
    values: dict[str, object] = {}
    for name in ("grant_types", "scopes"):
        value = getattr(changes, name)
        if value is not None:
            values[name] = " ".join(sorted(value))
    for name in ("audiences", "redirect_uris", "post_logout_redirect_uris", "web_origins"):
        value = getattr(changes, name)
        if value is not None:
            values[name] = " ".join(value)
    for name in ("access_token_ttl", "first_party", "require_par", "require_dpop"):
        value = getattr(changes, name)
        if value is not None:
            values[name] = value
    for name in ("jwks", "jwks_uri"):
        value = getattr(changes, name)
        if value is not None:
            values[name] = value or None  # "": no keys (registered) or no URI
    return values


def _jti_key(jti: str) -> str:
    """What is stored for an assertion id: its SHA-256, so any length fits the column."""
    return hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


def _client(row: object) -> Client:
    m = row._mapping  # type: ignore[attr-defined]
    return Client(
        id=m["client_id"],
        public=m["client_type"] == "public",
        grant_types=frozenset(m["grant_types"].split()),
        scopes=frozenset(m["scopes"].split()),
        audiences=tuple(m["audiences"].split()),
        access_token_ttl=m["access_token_ttl"],
        secret_hash=m["secret_hash"],
        jwks=m["jwks"],
        redirect_uris=tuple(m["redirect_uris"].split()),
        post_logout_redirect_uris=tuple(m["post_logout_redirect_uris"].split()),
        web_origins=tuple(m["web_origins"].split()),
        first_party=bool(m["first_party"]),
        require_par=bool(m["require_par"]),
        require_dpop=bool(m["require_dpop"]),
        previous_secret_hash=m["previous_secret_hash"],
        previous_secret_until=m["previous_secret_until"],
        jwks_uri=m["jwks_uri"],
    )


class SqlClientStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, client_id: str) -> Client | None:
        """A live client (removed ones are tombstones, never returned)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(clients).where(clients.c.client_id == client_id, clients.c.removed_at.is_(None))
                )
            ).first()
        return _client(row) if row else None

    async def list(self) -> list[Client]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(clients).where(clients.c.removed_at.is_(None)).order_by(clients.c.client_id)
                )
            ).all()
        return [_client(r) for r in rows]

    async def add(self, client: Client, now: float) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(clients).values(
                        client_id=client.id,
                        client_type="public" if client.public else "confidential",
                        secret_hash=client.secret_hash,
                        grant_types=" ".join(sorted(client.grant_types)),
                        scopes=" ".join(sorted(client.scopes or ())),
                        audiences=" ".join(client.audiences),
                        access_token_ttl=client.access_token_ttl,
                        jwks=client.jwks,
                        redirect_uris=" ".join(client.redirect_uris),
                        post_logout_redirect_uris=" ".join(client.post_logout_redirect_uris),
                        web_origins=" ".join(client.web_origins),
                        first_party=client.first_party,
                        require_par=client.require_par,
                        require_dpop=client.require_dpop,
                        jwks_uri=client.jwks_uri,
                        created_at=now,
                    )
                )
        except IntegrityError:
            removed = await self._removed(client.id)
            raise DuplicateClient(client.id, removed=removed) from None

    async def update(self, client_id: str, changes: ClientChanges, now: float) -> Client | None:
        """Write the fields ``changes`` sets, in one statement; the client after, or None."""
        values: dict[str, object] = {"updated_at": now}
        for name, value in _columns(changes).items():
            values[name] = value
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                update(clients)
                .where(clients.c.client_id == client_id, clients.c.removed_at.is_(None))
                .values(**values)
            )
            if result.rowcount == 0:
                return None
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return _client(row) if row else None

    async def rotate_secret(self, client_id: str, secret_hash: str, overlap_until: float, now: float) -> bool:
        """A new secret; the current one keeps working until ``overlap_until`` (now: at once)."""
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                update(clients)
                .where(
                    clients.c.client_id == client_id,
                    clients.c.removed_at.is_(None),
                    clients.c.client_type == "confidential",
                )
                .values(
                    previous_secret_hash=clients.c.secret_hash if overlap_until > now else None,
                    previous_secret_until=overlap_until if overlap_until > now else None,
                    secret_hash=secret_hash,
                    updated_at=now,
                )
            )
        return bool(result.rowcount)

    async def _removed(self, client_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(clients.c.removed_at).where(clients.c.client_id == client_id))
            ).first()
        return row is not None and row.removed_at is not None

    async def remove(self, client_id: str, now: float) -> int | None:
        """Remove a client and revoke its sessions in one transaction; None if there is no such client.

        The row stays as a tombstone so the id can never be registered again (an
        old refresh token of it must never work for a newcomer). Returns how many
        sessions were revoked. A login racing this either wrote its session
        before (revoked here) or re-reads the client when it writes (and stops).
        """
        async with write_transaction(self.engine) as conn:
            result = await conn.execute(
                update(clients)
                .where(clients.c.client_id == client_id, clients.c.removed_at.is_(None))
                .values(removed_at=now)
            )
            if result.rowcount == 0:
                return None
            revoked = await conn.execute(
                revoke_sessions(sessions.c.client_id == client_id, now, "client_removed")
            )
        return int(revoked.rowcount)

    async def use_assertion(self, client_id: str, jti: str, expires_at: float, now: float) -> bool:
        """Record an assertion id; False if any instance saw it before (a replay)."""
        try:
            async with self.engine.begin() as conn:
                # By the expires_at index: filtering by client too scanned its whole history.
                await conn.execute(delete(client_assertions).where(client_assertions.c.expires_at <= now))
                await conn.execute(
                    insert(client_assertions).values(
                        client_id=client_id, jti=_jti_key(jti), expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True

    async def prune_assertions(self, now: float) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(client_assertions).where(client_assertions.c.expires_at <= now)
            )
        return result.rowcount
