"""Client lookup: the built-in clients (the default public client, the console's), then the registry."""

from __future__ import annotations

from urllib.parse import urlsplit

from authsvc.settings import AuthSettings
from authsvc.store.records import Client
from authsvc.store.sql.clients import SqlClientStore
from authsvc.ttl_cache import TtlCache

__all__ = [
    "CONSOLE_CLIENT_ID",
    "CONSOLE_SCOPES",
    "ClientDirectory",
    "built_in_client_ids",
    "console_client",
    "default_client",
]

#: The console's own client (CONTRACT.md: Operator surface): public, first party, not stored.
CONSOLE_CLIENT_ID = "authsvc-console"
CONSOLE_SCOPES = frozenset({"openid", "authsvc:admin"})
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104 (recognised, not bound)


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


def built_in_client_ids(settings: AuthSettings) -> frozenset[str]:
    """Ids no registered client (nor user) may take."""
    return frozenset({settings.default_client_id, CONSOLE_CLIENT_ID})


def console_client(settings: AuthSettings) -> Client | None:
    """The console's client, when the admin listener is on (``AUTHSVC_ADMIN_BIND``).

    Its addresses are the admin listener's, fixed by the settings (never taken from a
    request): loopback ``/console/callback`` on any port (RFC 8252 §7.3) and ``localhost``
    on the admin port; the bound host, if it names one, and the issuer's host, on the
    admin port over http and https.
    """
    address = settings.admin_address
    if address is None:
        return None
    host, port = address
    origins: list[str] = []
    if host in _LOOPBACK or host in _WILDCARD:
        origins += ["http://127.0.0.1", "http://[::1]", f"http://localhost:{port}"]
    hosts = [urlsplit(settings.resolved_issuer).hostname or ""]
    if host not in _LOOPBACK and host not in _WILDCARD:
        hosts.insert(0, host)
    for name in dict.fromkeys(h for h in hosts if h and h not in ("127.0.0.1", "::1")):
        named = f"[{name}]" if ":" in name else name
        origins += [f"http://{named}:{port}", f"https://{named}:{port}"]
    return Client(
        id=CONSOLE_CLIENT_ID,
        public=True,
        grant_types=frozenset({"authorization_code"}),
        scopes=CONSOLE_SCOPES,
        audiences=(settings.default_audience,),
        registered=False,
        redirect_uris=tuple(f"{origin}/console/callback" for origin in dict.fromkeys(origins)),
        post_logout_redirect_uris=tuple(f"{origin}/console/signed-out" for origin in dict.fromkeys(origins)),
        first_party=True,
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
        self._console = console_client(settings)
        self.store = store
        self._recent: TtlCache[str, tuple[Client | None]] = TtlCache(self.CACHE_TTL)
        self._origins: TtlCache[str, frozenset[str]] = TtlCache(self.CACHE_TTL)

    @property
    def default(self) -> Client:
        return self._default

    async def get(self, client_id: str) -> Client | None:
        if client_id == self._default.id:
            return self._default
        if self._console is not None and client_id == self._console.id:
            return self._console

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
        if client_id == self._default.id or (self._console is not None and client_id == self._console.id):
            return True
        return await self.store.get(client_id) is not None

    async def use_assertion(self, client_id: str, jti: str, expires_at: float, now: float) -> bool:
        return await self.store.use_assertion(client_id, jti, expires_at, now)
