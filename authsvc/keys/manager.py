"""KeyManager: the loaded key set a server signs and checks tokens with.

It re-reads the store when the store's fingerprint changes, looking at most
once a second (a time comparison on the hot path, no lock), so a rotation run
by cron on any host is seen without restart. If the store turns unreadable
the last good set keeps serving for ``STALE_LIMIT`` seconds, then every
signing request fails with KeyStoreError (503) rather than sign with a key
the timetable may have retired.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.keys.generate import JoseKey, jose_key
from authsvc.keys.model import KeySetDoc
from authsvc.keys.timetable import Lifetimes, Timetable

__all__ = ["JwksDocument", "KeyManager", "KeyStore", "LoadedKey"]

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
        self._version: object | None = object()
        self._checked_at = -1e18
        self._failing_since: float | None = None
        self._doc = KeySetDoc()
        self.timetable = Timetable((), lifetimes)
        self._public: dict[str, LoadedKey] = {}
        self._private: dict[str, LoadedKey] = {}
        self._jwks: JwksDocument | None = None
        self._warned_alg: str | None = None
        self._overdue: tuple[str, float] | None = None  # (kid, when) the last key's period ends
        self._warned_overdue: str | None = None
        self.polled_in_background = False
        self.generation = 0

    # --- loading --------------------------------------------------------------
    def load(self) -> None:
        """Read the store now (start-up, or the CLI)."""
        self._checked_at = time.monotonic()
        version = self.store.version()
        self._apply(self.store.read(), version)
        self._failing_since = None

    def refresh(self) -> None:
        """Notice store changes; cheap unless a second has passed.

        With ``polled_in_background`` set (a store behind a network, read by
        ``poll`` from a worker thread), the hot path does no I/O at all.
        """
        if self.polled_in_background:
            return
        mono = time.monotonic()
        if mono - self._checked_at < CHECK_INTERVAL:
            return
        self._checked_at = mono
        self.poll()

    def poll(self) -> None:
        """Read the store's version now and reload if it changed (blocking I/O)."""
        mono = time.monotonic()
        self._checked_at = mono
        try:
            version = self.store.version()
            if version != self._version:
                self._apply(self.store.read(), version)
            self._failing_since = None
        except KeyStoreError as exc:
            if self._failing_since is None:
                self._failing_since = mono
                log.error("key store unreadable, serving the last key set: %s", exc)

    def _apply(self, doc: KeySetDoc, version: object | None) -> None:
        timetable = Timetable(doc.keys, self.lifetimes)
        now = self.clock.now()
        public: dict[str, LoadedKey] = {}
        private: dict[str, LoadedKey] = {}
        for record in doc.keys:
            if record.revoked_at is not None and record.revoked_at <= now:
                continue
            public[record.kid] = LoadedKey(record.kid, record.alg, _import_public(record.public_jwk))
            if timetable.sign_until(record.kid) > now:
                # Keep a key already in memory: another host whose clock runs a little
                # ahead may delete the file a moment before our clock says it stopped.
                loaded = self._private.get(record.kid)
                if loaded is None and record.private_deleted_at is None:
                    loaded = self._load_private(record.kid, record.alg)
                if loaded is not None:
                    private[record.kid] = loaded
        self._doc, self._version, self.timetable = doc, version, timetable
        self.generation += 1  # anything derived from the old key set is now stale
        last = timetable.last()
        self._overdue = (last.kid, last.sign_from + self.lifetimes.rotation_period) if last else None
        self._public, self._private, self._jwks = public, private, None
        current = timetable.signing(now)
        if current is not None and current.alg != self._configured_alg and self._warned_alg != current.alg:
            self._warned_alg = current.alg
            log.warning(
                "signing with %s key %s while AUTHSVC_SIGNING_ALG is %s; the next rotation switches",
                current.alg,
                current.kid,
                self._configured_alg,
            )

    def _load_private(self, kid: str, alg: str) -> LoadedKey | None:
        pem = self.store.read_private(kid)
        if pem is None:
            return None
        try:
            key = serialization.load_pem_private_key(pem, password=self._passphrase)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"private key {kid} cannot be loaded (wrong or missing AUTHSVC_KEY_PASSPHRASE?): "
                f"{type(exc).__name__}"
            ) from None
        return LoadedKey(kid, alg, jose_key(key))

    # --- the hot path ------------------------------------------------------------
    def _check_fresh(self) -> None:
        self.refresh()
        if self._failing_since is not None and time.monotonic() - self._failing_since > STALE_LIMIT:
            raise KeyStoreError("key store unreadable for over a minute")

    @property
    def doc(self) -> KeySetDoc:
        return self._doc

    def signing_key(self) -> LoadedKey:
        """The key the timetable names for now; KeyStoreError if there is none."""
        self._check_fresh()
        now = self.clock.now()
        record = self.timetable.signing(now)
        if record is None:
            raise KeyStoreError("no key can sign now")
        overdue = self._overdue
        if overdue is not None and overdue[0] == record.kid and now >= overdue[1]:
            self._warn_overdue(record.kid)
        loaded = self._private.get(record.kid)
        if loaded is None:
            loaded = self._load_private(record.kid, record.alg)  # a pending key just started
            if loaded is None:
                raise KeyStoreError(f"private key of signing key {record.kid} is missing")
            self._private[record.kid] = loaded
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
        self._check_fresh()
        if self.timetable.accepts_access_tokens(kid, self.clock.now()):
            return self._public.get(kid)
        return None

    def refresh_key(self, kid: str) -> LoadedKey | None:
        """The public key for a refresh token's kid, if tokens it signed can live."""
        self._check_fresh()
        if self.timetable.accepts_refresh_tokens(kid, self.clock.now()):
            return self._public.get(kid)
        return None

    def jwks(self) -> JwksDocument:
        """The JWKS body, its ETag and max-age, rebuilt only when the set changes."""
        self._check_fresh()
        now = self.clock.now()
        doc = self._jwks
        if doc is None or now >= doc.valid_until:
            doc = self._jwks = self._build_jwks(now)
        return doc

    def _build_jwks(self, now: float) -> JwksDocument:
        keys = [record.public_jwk for record in self.timetable.published(now)]
        body = json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        # Far from the next change the max-age is the configured one; near it the
        # max-age counts down, so rebuild on every request in that window.
        far = self.timetable.next_jwks_change(now) - now > self.lifetimes.jwks_max_age + 1
        valid_until = now + 1.0 if far else now
        return JwksDocument(body, etag, self.timetable.jwks_max_age(now), valid_until)

    def status(self) -> dict[str, Any]:
        """Key facts for /readyz and metrics."""
        now = self.clock.now()
        current = self.timetable.signing(now)
        return {
            "store": self.store.describe(),
            "signing_kid": current.kid if current else None,
            "signing_alg": current.alg if current else None,
            "signing_key_age": (now - current.sign_from) if current else None,
            "seconds_until_next_change": self.timetable.next_change(now) - now,
            "rotation_overdue": self.timetable.rotation_overdue(now),
            "store_failing": self._failing_since is not None,
        }


def _import_public(jwk: dict[str, Any]) -> JoseKey:
    from joserfc.jwk import JWKRegistry

    data = {k: v for k, v in jwk.items() if k not in ("use", "alg", "kid")}
    return JWKRegistry.import_key(data)  # type: ignore[return-value]
