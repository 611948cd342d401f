"""KeyManager: the loaded key set a server signs and checks tokens with.

A server polls the store from a worker thread (``poll``, every half second,
``runtime.Services``): it reads the store's fingerprint, and when it changed
reads the key set and decrypts the private halves it may sign with — pending,
signing and standby keys, each as soon as it is published, not when it
starts signing. Decrypting a passphrase-protected key costs PBKDF2 at
600,000 iterations (a good part of a second), so it never runs on the event
loop: the hot path only reads the last complete ``_KeySet`` (one reference,
swapped whole) and the clock.

Each private key loads on its own. A key this process cannot open (another
passphrase on the host that wrote it, a corrupt PEM) is recorded, logged once
at ERROR (its kid only) and reported by ``status()``; it poisons nothing else,
so ``/token`` keeps working while a loadable key signs, and fails only when
the key the timetable names for now is the one that cannot be loaded.

If the store turns unreadable the last good set keeps serving for
``STALE_LIMIT`` seconds, then every signing request fails with KeyStoreError
(503) rather than sign with a key the timetable may have retired.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.keys.encryption import load_private_key
from authsvc.keys.generate import JoseKey, jose_key
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.timetable import Lifetimes, Timetable

__all__ = ["JwksDocument", "KeyManager", "KeyStore", "LoadedKey", "open_private"]

log = logging.getLogger("authsvc.keys")

CHECK_INTERVAL = 1.0
STALE_LIMIT = 60.0


class KeyStore(Protocol):
    """What the manager needs from a key store (file or database)."""

    kind: str

    def describe(self) -> str: ...
    def version(self) -> object | None: ...
    def read(self) -> KeySetDoc: ...
    def read_private(self, kid: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class LoadedKey:
    kid: str
    alg: str
    key: JoseKey


@dataclass(frozen=True, slots=True)
class JwksDocument:
    body: bytes
    etag: str
    max_age: int
    valid_until: float  # recompute after this instant


def open_private(store: KeyStore, record: KeyRecord, passphrase: bytes | None) -> LoadedKey | None:
    """Read and decrypt one private key (blocking; slow with a passphrase). None if it is gone.

    KeyStoreError when it cannot be opened; the text names the kid and the
    setting, never key material.
    """
    pem = store.read_private(record.kid)
    if pem is None:
        return None
    try:
        key = load_private_key(pem, passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"private key {record.kid} cannot be opened with this AUTHSVC_KEY_PASSPHRASE "
            f"(written with another passphrase, or corrupt): {type(exc).__name__}"
        ) from None
    return LoadedKey(record.kid, record.alg, jose_key(key))


@dataclass(frozen=True, slots=True)
class _KeySet:
    """One complete, immutable view of the store: what the hot path reads."""

    doc: KeySetDoc = field(default_factory=KeySetDoc)
    version: object | None = None
    timetable: Timetable | None = None
    public: dict[str, LoadedKey] = field(default_factory=dict)
    private: dict[str, LoadedKey] = field(default_factory=dict)
    unloadable: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # private halves the manifest names but the store lacks
    overdue: tuple[str, float] | None = None  # (kid, when) the last key's period ends
    generation: int = 0


class KeyManager:
    """Signing key, verification keys and the JWKS, kept in step with the store."""

    def __init__(
        self,
        store: KeyStore,
        lifetimes: Lifetimes,
        clock: Clock,
        passphrase: bytes | None,
        configured_alg: str,
    ) -> None:
        self.store = store
        self.lifetimes = lifetimes
        self.clock = clock
        self._passphrase = passphrase
        self._configured_alg = configured_alg
        self._set = _KeySet(version=object(), timetable=Timetable((), lifetimes))
        self._loading = threading.Lock()  # one load at a time; readers never wait for it
        self._checked_at = -1e18
        self._failing_since: float | None = None
        self._jwks: tuple[_KeySet, JwksDocument] | None = None
        self._warned_alg: str | None = None
        self._warned_overdue: str | None = None
        self._logged_unloadable: set[str] = set()
        self.polled_in_background = False
        self.polls = 0  # completed polls, so a test can wait for the next one

    # --- loading (a worker thread in a server; never the event loop) ---------------
    def load(self) -> None:
        """Read the store now (start-up, or the CLI); KeyStoreError if the signing key cannot load."""
        with self._loading:
            self._checked_at = time.monotonic()
            version = self.store.version()
            self._apply(self.store.read(), version)
            self._failing_since = None
        current = self.timetable.signing(self.clock.now())
        if current is not None and current.kid in self._set.unloadable:
            raise KeyStoreError(
                f"signing key {current.kid} cannot be opened with this AUTHSVC_KEY_PASSPHRASE "
                "(written with another passphrase, or corrupt)"
            )

    def refresh(self) -> None:
        """Notice store changes in a process with no poller (the CLI, unit tests).

        With ``polled_in_background`` set (every server), the hot path does no
        I/O at all: ``poll`` runs on a worker thread.
        """
        if self.polled_in_background:
            return
        mono = time.monotonic()
        if mono - self._checked_at < CHECK_INTERVAL:
            return
        self.poll()

    def poll(self) -> None:
        """Read the store's version now and reload if it changed (blocking I/O, decryption)."""
        with self._loading:
            mono = time.monotonic()
            self._checked_at = mono
            try:
                version = self.store.version()
                # A missing private file may be put back (cheap to look for again); a key
                # that did not decrypt is tried again only when the store changes.
                if version != self._set.version or self._missing_came_back():
                    self._apply(self.store.read(), version)
                self._failing_since = None
            except KeyStoreError as exc:
                if self._failing_since is None:
                    self._failing_since = mono
                    log.error("key store unreadable, serving the last key set: %s", exc)
            finally:
                self.polls += 1

    def _missing_came_back(self) -> bool:
        return any(self.store.read_private(kid) is not None for kid in self._set.missing)

    def _apply(self, doc: KeySetDoc, version: object | None) -> None:
        timetable = Timetable(doc.keys, self.lifetimes)
        now = self.clock.now()
        previous = self._set
        public: dict[str, LoadedKey] = {}
        private: dict[str, LoadedKey] = {}
        unloadable: list[str] = []
        missing: list[str] = []
        for record in doc.keys:
            if record.revoked_at is not None and record.revoked_at <= now:
                continue
            public[record.kid] = LoadedKey(record.kid, record.alg, _import_public(record.public_jwk))
            if not timetable.needs_private(record, now):
                continue
            # Keep a key already in memory: another host whose clock runs a little
            # ahead may delete the file a moment before our clock says it stopped.
            loaded = previous.private.get(record.kid)
            if loaded is None and record.private_deleted_at is None:
                try:
                    loaded = open_private(self.store, record, self._passphrase)
                except KeyStoreError as exc:
                    unloadable.append(record.kid)
                    if record.kid not in self._logged_unloadable:
                        self._logged_unloadable.add(record.kid)
                        log.error("%s; this server will not sign with it", exc)
            if loaded is not None:
                private[record.kid] = loaded
            elif record.kid not in unloadable and record.private_deleted_at is None:
                missing.append(record.kid)
        last = timetable.last()
        self._set = _KeySet(
            doc=doc,
            version=version,
            timetable=timetable,
            public=public,
            private=private,
            unloadable=tuple(unloadable),
            missing=tuple(missing),
            overdue=(last.kid, last.sign_from + self.lifetimes.rotation_period) if last else None,
            generation=previous.generation + 1,  # anything derived from the old set is now stale
        )
        current = timetable.signing(now)
        if current is not None and current.alg != self._configured_alg and self._warned_alg != current.alg:
            self._warned_alg = current.alg
            log.warning(
                "signing with %s key %s while AUTHSVC_SIGNING_ALG is %s; the next rotation switches",
                current.alg,
                current.kid,
                self._configured_alg,
            )

    # --- the hot path: no I/O, no decryption ----------------------------------------------
    def _check_fresh(self) -> _KeySet:
        self.refresh()
        if self._failing_since is not None and time.monotonic() - self._failing_since > STALE_LIMIT:
            raise KeyStoreError("key store unreadable for over a minute")
        return self._set

    @property
    def doc(self) -> KeySetDoc:
        return self._set.doc

    @property
    def timetable(self) -> Timetable:
        timetable = self._set.timetable
        assert timetable is not None
        return timetable

    @property
    def generation(self) -> int:
        return self._set.generation

    def signing_key(self) -> LoadedKey:
        """The key the timetable names for now; KeyStoreError if there is none or it did not load."""
        keys = self._check_fresh()
        assert keys.timetable is not None
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

    def access_key(self, kid: str) -> LoadedKey | None:
        """The public key for an access token's kid, if it is still in the JWKS."""
        keys = self._check_fresh()
        assert keys.timetable is not None
        if keys.timetable.accepts_access_tokens(kid, self.clock.now()):
            return keys.public.get(kid)
        return None

    def refresh_key(self, kid: str) -> LoadedKey | None:
        """The public key for a refresh token's kid, if tokens it signed can live."""
        keys = self._check_fresh()
        assert keys.timetable is not None
        if keys.timetable.accepts_refresh_tokens(kid, self.clock.now()):
            return keys.public.get(kid)
        return None

    def jwks(self) -> JwksDocument:
        """The JWKS body, its ETag and max-age, rebuilt only when the set changes."""
        keys = self._check_fresh()
        now = self.clock.now()
        cached = self._jwks
        if cached is None or cached[0] is not keys or now >= cached[1].valid_until:
            cached = self._jwks = (keys, self._build_jwks(keys, now))
        return cached[1]

    def _build_jwks(self, keys: _KeySet, now: float) -> JwksDocument:
        timetable = keys.timetable
        assert timetable is not None
        body_keys = [record.public_jwk for record in timetable.published(now)]
        body = json.dumps({"keys": body_keys}, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        # Far from the next change the max-age is the configured one; near it the
        # max-age counts down, so rebuild on every request in that window.
        far = timetable.next_jwks_change(now) - now > self.lifetimes.jwks_max_age + 1
        valid_until = now + 1.0 if far else now
        return JwksDocument(body, etag, timetable.jwks_max_age(now), valid_until)

    def status(self) -> dict[str, Any]:
        """Key facts for /readyz and metrics."""
        keys = self._set
        timetable = keys.timetable
        assert timetable is not None
        now = self.clock.now()
        current = timetable.signing(now)
        standby = timetable.standby(now)
        return {
            "store": self.store.describe(),
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


def _import_public(jwk: dict[str, Any]) -> JoseKey:
    from joserfc.jwk import JWKRegistry

    data = {k: v for k, v in jwk.items() if k not in ("use", "alg", "kid")}
    return JWKRegistry.import_key(data)  # type: ignore[return-value]
