"""Services: the composition root of a server process, built once from its settings.

``create_app``'s lifespan builds them; each endpoint's ``build`` (``api.routes``)
then takes only the parts its handler uses. The CLI opens what one command needs
itself (``store.sql.database.command_stores``, ``keys.setup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.api.bearer import BearerCheck
from authsvc.api.browser_pages import BrowserPages
from authsvc.api.token_request import TokenReader
from authsvc.browser.cookies import Cookies
from authsvc.browser.flow import BrowserFlow
from authsvc.client_auth import ClientAuthenticator
from authsvc.clients import ClientDirectory
from authsvc.clock import Clock, SystemClock
from authsvc.dpop_gate import DpopGate, ServerNonces
from authsvc.events import Events
from authsvc.grants import GrantRegistry
from authsvc.grants.authorization_code import AuthorizationCodeGrant
from authsvc.grants.client_credentials import ClientCredentialsGrant
from authsvc.grants.password import PasswordGrant
from authsvc.grants.refresh_token import RefreshTokenGrant
from authsvc.keys.jwks import JwksPublisher
from authsvc.keys.ring import KeyRing
from authsvc.keys.setup import load_keys
from authsvc.keys.watcher import POLL_INTERVAL, KeyWatcher
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.settings import AuthSettings
from authsvc.sign_in import PasswordCheck
from authsvc.store.protocols import Counters
from authsvc.store.records import User
from authsvc.store.redis import RedisCounters, RedisOnce, RedisOrDatabase
from authsvc.store.sql.browser import SqlBrowserStore
from authsvc.store.sql.clients import SqlClientStore
from authsvc.store.sql.counters import SqlCounters
from authsvc.store.sql.database import open_database
from authsvc.store.sql.secrets import shared_secret
from authsvc.store.sql.sessions import SqlSessionStore
from authsvc.store.sql.used_once import SqlUsedOnce
from authsvc.store.sql.users import SqlUserStore
from authsvc.tokens.families import Families
from authsvc.tokens.issuer import TokenIssuer
from authsvc.ttl_cache import TtlCache
from authsvc.web.pages import load_pages

__all__ = ["Services"]

RECENT_TTL = 0.5
VERIFIED_TOKEN_TTL = 60.0
#: Longest pause of the housekeeping task: stored grace bodies are gone within this
#: many seconds of their grace ending (CONTRACT.md allows 60), expired counters too.
SWEEP_INTERVAL = 30.0

log = logging.getLogger("authsvc")


@dataclass
class Services:
    settings: AuthSettings
    clock: Clock
    engine: AsyncEngine
    keys: KeyRing
    key_watcher: KeyWatcher
    jwks: JwksPublisher
    users: SqlUserStore
    session_store: SqlSessionStore
    events: Events
    tokens: TokenIssuer
    families: Families
    grants: GrantRegistry
    clients: ClientDirectory
    client_auth: ClientAuthenticator
    hasher: PasswordHasher
    login_limiter: LoginLimiter
    token_reader: TokenReader
    bearer: BearerCheck
    # Users by id for /users/me, up to RECENT_TTL stale (CONTRACT.md allows 1 s);
    # local changes clear it at once.
    recent_users: TtlCache[str, User]
    # The database's counters, pruned by the sweeper (Redis expires its own keys); the
    # limiter's counters are these, or Redis in front of them.
    database_counters: SqlCounters
    # Browser sign-in: its state, its decisions, its pages.
    browser_store: SqlBrowserStore
    browser_flow: BrowserFlow
    browser_pages: BrowserPages
    # DPoP proofs at the token endpoint and the protected routes.
    dpop: DpopGate
    key_poller: asyncio.Task[None] | None = None
    sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, settings: AuthSettings, clock: Clock | None = None, *, bootstrap_keys: bool = False
    ) -> Services:
        clock = clock or SystemClock()
        # Before the keys: the key store may live there. The server creates its database.
        engine = await open_database(settings, create=True)
        recent_access: TtlCache[tuple[str | None, str], bool] = TtlCache(RECENT_TTL)
        recent_users: TtlCache[str, User] = TtlCache(RECENT_TTL)

        def forget() -> None:
            recent_access.clear()
            recent_users.clear()

        # Two engines per process: the async one (users, clients) and the session store's
        # pooled synchronous one, which a database key store shares.
        session_store = SqlSessionStore.open(settings.database_url, engine, on_revoke=forget)
        try:
            # Off the loop: key generation and PBKDF2 decryption take a good part of a second.
            watcher = await anyio.to_thread.run_sync(
                lambda: load_keys(settings, clock, bootstrap=bootstrap_keys, engine=session_store.db.engine)
            )
        except BaseException:
            session_store.close()
            await engine.dispose()
            raise
        keys = watcher.ring
        hasher = PasswordHasher(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
        )
        await hasher.prepare()
        clients = ClientDirectory(settings, SqlClientStore(engine))
        database_counters = SqlCounters(session_store.db)
        redis = RedisCounters(settings.redis_url) if settings.redis_url else None
        counters: Counters = RedisOrDatabase(redis, database_counters) if redis else database_counters
        login_limiter = LoginLimiter(
            settings.login_max_per_user,
            settings.login_max_per_address,
            settings.login_window,
            counters,
            clock,
        )
        users = SqlUserStore(engine, on_change=forget)
        client_auth = ClientAuthenticator(
            clients, hasher, clock, settings.resolved_issuer, settings.clock_skew, login_limiter
        )
        events = Events()
        tokens = TokenIssuer(
            issuer=settings.resolved_issuer,
            keys=keys,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
            default_audience=settings.default_audience,
        )
        families = Families(
            session_store,
            tokens,
            keys,
            clock,
            events,
            grace=settings.refresh_reuse_grace,
            session_ttl=settings.refresh_token_max_ttl,
            skew=settings.clock_skew,
        )
        passwords = PasswordCheck(users, hasher, login_limiter, clock, events)
        browser_store = SqlBrowserStore(session_store.db, on_revoke=forget)
        grants = GrantRegistry(
            (
                PasswordGrant(passwords, families),
                RefreshTokenGrant(families),
                ClientCredentialsGrant(tokens, clock, events),
                AuthorizationCodeGrant(browser_store, families, clock, events),
            )
        )
        cookies = Cookies(
            secure=settings.secure_cookies, session_ttl=settings.sso_session_ttl, path=settings.issuer_path
        )
        nonces = (
            ServerNonces(await shared_secret(session_store.db, "dpop_nonce"), clock)
            if settings.dpop_nonce
            else None
        )
        used_once = RedisOnce(redis) if redis else SqlUsedOnce(session_store.db)
        dpop = DpopGate(settings.resolved_issuer, clock, settings.clock_skew, used_once, nonces, events)
        services = cls(
            settings=settings,
            clock=clock,
            engine=engine,
            keys=keys,
            key_watcher=watcher,
            jwks=JwksPublisher(keys),
            users=users,
            session_store=session_store,
            events=events,
            tokens=tokens,
            families=families,
            grants=grants,
            clients=clients,
            client_auth=client_auth,
            hasher=hasher,
            token_reader=TokenReader(
                client_auth,
                keys,
                settings.resolved_issuer,
                clock,
                settings.clock_skew,
                settings.trusted_proxy_networks,
            ),
            bearer=BearerCheck(
                keys,
                clock,
                settings.resolved_issuer,
                settings.default_audience,
                settings.clock_skew,
                session_store,
                TtlCache(VERIFIED_TOKEN_TTL, max_entries=10_000),
                recent_access,
                dpop,
            ),
            recent_users=recent_users,
            login_limiter=login_limiter,
            database_counters=database_counters,
            browser_store=browser_store,
            browser_flow=BrowserFlow(
                browser_store,
                clients,
                users,
                passwords,
                clock,
                events,
                issuer=settings.resolved_issuer,
                code_ttl=settings.auth_code_ttl,
                session_ttl=settings.sso_session_ttl,
            ),
            browser_pages=BrowserPages(load_pages(settings), cookies, settings.issuer_path + "/authorize"),
            dpop=dpop,
        )
        services.watch_keys_in_background()
        return services

    def sweep_in_background(self) -> None:
        """Clear stored grace bodies once their grace has ended, and expired counters.

        Run by the server (not by CLI commands). The pause follows the grace so
        that a short grace is swept soon after it ends; every process may run
        it, the statements are idempotent.
        """
        if self.sweeper is not None:
            return
        grace = self.settings.refresh_reuse_grace
        interval = min(SWEEP_INTERVAL, float(max(1, grace))) if grace > 0 else SWEEP_INTERVAL

        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    now = self.clock.now()
                    await self.session_store.drop_grace_bodies(now)
                    await self.database_counters.prune(now)
                    await self.browser_store.prune(now, code_memory=self.settings.access_token_ttl)
                except Exception as exc:  # a database outage: try again next time
                    log.warning("housekeeping failed: %s", type(exc).__name__)

        self.sweeper = asyncio.get_running_loop().create_task(sweep_forever())

    def watch_keys_in_background(self) -> None:
        """The key store (file or database) is read, and keys decrypted, on a worker thread.

        The event loop never waits for a stat, a query or PBKDF2: a half-second
        poll keeps "servers see key-store changes within 1 s" (CONTRACT.md).
        """
        if self.key_poller is not None:
            return

        async def poll_forever() -> None:
            while True:
                await asyncio.sleep(POLL_INTERVAL)
                await anyio.to_thread.run_sync(self.key_watcher.poll)

        self.key_poller = asyncio.get_running_loop().create_task(poll_forever())

    async def close(self) -> None:
        for task in (self.key_poller, self.sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.login_limiter.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.session_store.close)
        await self.engine.dispose()
