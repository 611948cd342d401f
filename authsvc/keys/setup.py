"""The key store and key ring a process builds from its settings.

``serve`` (and the app it runs) bootstraps an empty store and loads the ring
once, off the event loop; the key commands open the store to change it.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from authsvc.clock import Clock
from authsvc.events import Events
from authsvc.keys.plan import Change
from authsvc.keys.ring import KeyRing
from authsvc.keys.rotation import create_first_key
from authsvc.keys.store_db import DatabaseKeyStore
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import Lifetimes
from authsvc.keys.watcher import KeyWatcher
from authsvc.settings import AuthSettings
from authsvc.store.protocols import KeyStore

__all__ = ["bootstrap_keys", "build_key_store", "lifetimes", "load_keys"]

log = logging.getLogger("authsvc")


def lifetimes(settings: AuthSettings) -> Lifetimes:
    return Lifetimes(
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
        skew=settings.clock_skew,
        rotation_period=settings.key_rotation_period,
        prepublish=settings.key_prepublish,
        jwks_max_age=settings.jwks_max_age,
    )


def build_key_store(settings: AuthSettings, engine: Engine | None = None) -> KeyStore:
    """The configured key store: a directory, or two tables in the database (through ``engine``,
    a server's pooled synchronous engine, when given)."""
    if settings.key_store == "database":
        return DatabaseKeyStore(settings.database_url, engine)
    return FileKeyStore(settings.keys_dir)


def bootstrap_keys(settings: AuthSettings, clock: Clock, events: Events | None = None) -> Change | None:
    """``serve`` on an empty store: the first key (and a standby with ``AUTHSVC_KEY_STANDBY``)."""
    return create_first_key(
        build_key_store(settings),
        settings.signing_alg,
        clock,
        settings.passphrase_bytes,
        standby=settings.key_standby,
        events=events,
    )


def load_keys(
    settings: AuthSettings, clock: Clock, *, bootstrap: bool = False, engine: Engine | None = None
) -> KeyWatcher:
    """The store's watcher with its ring loaded (and the first key created when ``bootstrap``).

    Blocking and slow with a passphrase (PBKDF2): a server calls it off the loop.
    The passphrase must open the signing key (``KeyWatcher.load`` says so in one
    line naming the setting); any other key this process cannot open is
    reported, not fatal.
    """
    store = build_key_store(settings, engine)
    if bootstrap:
        change = bootstrap_keys(settings, clock)
        if change is not None:
            log.info("key store was empty: %s", change)
    ring = KeyRing(lifetimes(settings), clock, settings.signing_alg)
    watcher = KeyWatcher(store, ring, settings.passphrase_bytes)
    watcher.load()
    return watcher
