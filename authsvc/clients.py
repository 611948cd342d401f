"""Client lookup: the built-in default public client, then the registry."""

from __future__ import annotations

from authsvc.settings import AuthSettings
from authsvc.store.records import Client
from authsvc.store.sql.clients import SqlClientStore
from authsvc.ttl_cache import TtlCache

__all__ = ["ClientDirectory", "default_client"]


def default_client(settings: AuthSettings) -> Client:
    """The first-party public client of CONTRACT.md (password + refresh grants)."""
    return Client(
        id=settings.default_client_id,
        public=True,
        grant_types=frozenset({"password", "refresh_token"}),
        scopes=None,
        audiences=(settings.default_audience,),
        registered=False,
    )


class ClientDirectory:
    """Finds clients; the default client exists out of the box.

    The registry is configuration that changes rarely: lookups are kept for
    ``CACHE_TTL`` seconds (hits and misses alike), so a registration or a
    removal reaches every instance within that time, and the token endpoint
    does not pay a database round trip per request for it. Assertion ids
    (replay protection) always go to the database.
    """

    CACHE_TTL = 0.5

    def __init__(self, settings: AuthSettings, store: SqlClientStore) -> None:
        self._default = default_client(settings)
        self.store = store
        self._recent: TtlCache[str, tuple[Client | None]] = TtlCache(self.CACHE_TTL)
        self._origins: TtlCache[str, frozenset[str]] = TtlCache(self.CACHE_TTL)

    @property
    def default(self) -> Client:
        return self._default

    async def get(self, client_id: str) -> Client | None:
        if client_id == self._default.id:
            return self._default

        async def load() -> tuple[Client | None]:
            return (await self.store.get(client_id),)  # a miss is kept too

        found = await self._recent.get_or_load(client_id, load)
        return found[0] if found is not None else None

    def forget(self) -> None:
        """Drop what is cached (a client changed in this process)."""
        self._recent.clear()
        self._origins.clear()

    async def web_origins(self) -> frozenset[str]:
        """Every origin a registered client named with ``--web-origin`` (for CORS)."""

        async def load() -> frozenset[str]:
            return frozenset(origin for client in await self.store.list() for origin in client.web_origins)

        found = await self._origins.get_or_load("", load)
        return found if found is not None else frozenset()

    async def is_live(self, client_id: str) -> bool:
        """Whether the client exists now, read from the database (introspection must not lag)."""
        return client_id == self._default.id or await self.store.get(client_id) is not None

    async def use_assertion(self, client_id: str, jti: str, expires_at: float, now: float) -> bool:
        return await self.store.use_assertion(client_id, jti, expires_at, now)
