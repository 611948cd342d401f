"""Clients (with tombstones) and used assertion ids in memory."""

from __future__ import annotations

import hashlib

from authsvc.store.memory.tables import MemoryDatabase, Tables, revoke_where
from authsvc.store.records import Client
from authsvc.store.sql.clients import DuplicateClient

__all__ = ["MemoryClientStore"]


class MemoryClientStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def get(self, client_id: str) -> Client | None:
        return self.db.tables.clients.get(client_id)

    async def list(self) -> list[Client]:
        return sorted(self.db.tables.clients.values(), key=lambda c: c.id)

    async def add(self, client: Client, now: float) -> None:
        def tx(t: Tables) -> None:
            if client.id in t.removed_clients or client.id in t.clients:
                raise DuplicateClient(client.id, removed=client.id in t.removed_clients)
            t.clients[client.id] = client

        await self.db.transaction(tx)

    async def remove(self, client_id: str, now: float) -> int | None:
        def tx(t: Tables) -> int | None:
            if t.clients.pop(client_id, None) is None:
                return None
            t.removed_clients[client_id] = now
            return revoke_where(t, lambda s: s.client_id == client_id, now, "client_removed")

        return await self.db.transaction(tx)

    async def use_assertion(self, client_id: str, jti: str, expires_at: float, now: float) -> bool:
        key = (client_id, hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest())

        def tx(t: Tables) -> bool:
            for seen in [k for k, until in t.assertions.items() if k[0] == client_id and until <= now]:
                del t.assertions[seen]
            if key in t.assertions:
                return False
            t.assertions[key] = expires_at
            return True

        return await self.db.transaction(tx)

    async def prune_assertions(self, now: float) -> int:
        def tx(t: Tables) -> int:
            old = [k for k, until in t.assertions.items() if until <= now]
            for k in old:
                del t.assertions[k]
            return len(old)

        return await self.db.transaction(tx)
