"""The key ring: the key set a server signs and checks tokens with, right now.

One immutable ``KeySet`` (the manifest, its timetable, the public keys and the
private keys this process could open) is swapped in whole by the watcher
(``keys.watcher``) whenever the store changes; the hot path reads that one
reference and the clock — no I/O, no decryption, no lock. The ring decides
which key signs now and which kids a token may be checked with.

If the store turns unreadable, the last good set keeps serving for
``STALE_LIMIT`` seconds; after that every lookup fails with KeyStoreError
(503) rather than sign with a key the timetable may have retired.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.keys.generate import JoseKey
from authsvc.keys.model import KeySetDoc
from authsvc.keys.timetable import Lifetimes, Timetable

__all__ = ["STALE_LIMIT", "KeyRing", "KeySet", "LoadedKey"]

log = logging.getLogger("authsvc.keys")

STALE_LIMIT = 60.0


@dataclass(frozen=True, slots=True)
class LoadedKey:
    kid: str
    alg: str
    key: JoseKey


@dataclass(frozen=True, slots=True)
class KeySet:
    """One complete, immutable view of the store."""

    doc: KeySetDoc
    timetable: Timetable
    version: object | None = None
    public: dict[str, LoadedKey] = field(default_factory=dict)
    private: dict[str, LoadedKey] = field(default_factory=dict)
    unloadable: tuple[str, ...] = ()  # private halves this process could not open
    missing: tuple[str, ...] = ()  # private halves the manifest names but the store lacks
    loading: tuple[str, ...] = ()  # private halves being decrypted right now (the watcher)
    overdue: tuple[str, float] | None = None  # (kid, when) the last key's rotation period ends
    generation: int = 0  # bumped by every swap: anything derived from an older set is stale


class KeyRing:
    """Which key signs and which kids are accepted, from the current ``KeySet``."""

    def __init__(self, lifetimes: Lifetimes, clock: Clock, configured_alg: str) -> None:
        self.lifetimes = lifetimes
        self.clock = clock
        self.configured_alg = configured_alg
        self._set = KeySet(KeySetDoc(), Timetable((), lifetimes), version=object())
        self._failing_since: float | None = None
        self._warned_alg: str | None = None
        self._warned_overdue: str | None = None

    # --- fed by the watcher ------------------------------------------------------------
    def install(self, keys: KeySet) -> None:
        """Swap in a new key set (the store is readable again, if it was not)."""
        self._set = keys
        self._failing_since = None
        current = keys.timetable.signing(self.clock.now())
        if current is not None and current.alg != self.configured_alg and self._warned_alg != current.alg:
            self._warned_alg = current.alg
            log.warning(
                "signing with %s key %s while AUTHSVC_SIGNING_ALG is %s; the next rotation switches",
                current.alg,
                current.kid,
                self.configured_alg,
            )

    def store_readable(self) -> None:
        self._failing_since = None

    def store_failing(self, error: KeyStoreError) -> None:
        """The store could not be read: keep serving the last set, for a while."""
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("key store unreadable, serving the last key set: %s", error)

    # --- the hot path ----------------------------------------------------------------
    @property
    def keys(self) -> KeySet:
        """The current set; KeyStoreError once the store has been unreadable too long."""
        since = self._failing_since
        if since is not None and time.monotonic() - since > STALE_LIMIT:
            raise KeyStoreError("key store unreadable for over a minute")
        return self._set

    def keys_unchecked(self) -> KeySet:
        """The current set even when stale (the watcher builds on it; status reports on it)."""
        return self._set

    @property
    def timetable(self) -> Timetable:
        return self._set.timetable

    @property
    def generation(self) -> int:
        return self._set.generation

    def signing_key(self) -> LoadedKey:
        """The key the timetable names for now; KeyStoreError if there is none or it did not load."""
        keys = self.keys
        now = self.clock.now()
        record = keys.timetable.signing(now)
        if record is None:
            raise KeyStoreError("no key can sign now")
        overdue = keys.overdue
        if overdue is not None and overdue[0] == record.kid and now >= overdue[1]:
            self._warn_overdue(record.kid)
        loaded = keys.private.get(record.kid)
        if loaded is None:
            if record.kid in keys.unloadable:
                raise KeyStoreError(f"signing key {record.kid} cannot be loaded on this server")
            if record.kid in keys.loading:
                raise KeyStoreError(f"private key of signing key {record.kid} is still being decrypted")
            raise KeyStoreError(f"private key of signing key {record.kid} is missing")
        return loaded

    def _warn_overdue(self, kid: str) -> None:
        if self._warned_overdue != kid:
            self._warned_overdue = kid
            log.warning(
                "rotation overdue: signing key %s has passed AUTHSVC_KEY_ROTATION_PERIOD and has no "
                "successor; it keeps signing until scripts/rotate_keys.py runs",
                kid,
            )

    def access_token_key(self, kid: str) -> LoadedKey | None:
        """The public key for an access token's kid, while the kid is in the JWKS."""
        keys = self.keys
        if keys.timetable.accepts_access_tokens(kid, self.clock.now()):
            return keys.public.get(kid)
        return None

    def refresh_token_key(self, kid: str) -> LoadedKey | None:
        """The public key for a refresh token's kid, while tokens it signed can live."""
        keys = self.keys
        if keys.timetable.accepts_refresh_tokens(kid, self.clock.now()):
            return keys.public.get(kid)
        return None

    def status(self) -> dict[str, Any]:
        """Key facts for /readyz and metrics (never raises for staleness: it reports it)."""
        keys = self._set
        timetable = keys.timetable
        now = self.clock.now()
        current = timetable.signing(now)
        standby = timetable.standby(now)
        return {
            "signing_kid": current.kid if current else None,
            "signing_alg": current.alg if current else None,
            "signing_key_age": (now - current.sign_from) if current else None,
            "signing_key_loaded": current is not None and current.kid in keys.private,
            "standby_kid": standby.kid if standby else None,
            "unloadable_keys": list(keys.unloadable),
            "seconds_until_next_change": timetable.next_change(now) - now,
            "rotation_overdue": timetable.rotation_overdue(now),
            "store_failing": self._failing_since is not None,
        }
