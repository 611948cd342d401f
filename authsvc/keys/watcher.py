"""The store watcher: reads the key store into the key ring, off the event loop.

A server polls every ``POLL_INTERVAL`` from a worker thread (``runtime``): it
reads the store's fingerprint and, when it changed, the key set, and decrypts
the private halves the timetable may sign with — pending, signing and standby
keys, each as soon as it is published, not when it starts signing. Decrypting
a passphrase-protected key costs PBKDF2 at 600,000 iterations (a good part of
a second), which is why this never runs on the event loop.

A change is installed in two steps when it brings private halves to decrypt:
first everything but them (a revocation, a new public key, a new timetable),
then the same set with them. Decryption holds the GIL for its whole KDF (about
0.1 s quiet, seconds on a loaded host), and a revocation must not wait for it:
CONTRACT.md gives a server 1 s to see a store change (found by the soak, where
a key revoked beside a new standby stayed trusted for seconds on one instance).

Each private key loads on its own. A key this process cannot open (another
passphrase on the host that wrote it, a corrupt PEM) is recorded, logged once
at ERROR (its kid only) and reported by the ring's status; it poisons nothing
else, so ``/token`` keeps working while a loadable key signs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from authsvc.errors import KeyStoreError
from authsvc.keys.encryption import load_private_key
from authsvc.keys.generate import JoseKey, jose_key
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.ring import KeyRing, KeySet, LoadedKey
from authsvc.keys.timetable import Timetable
from authsvc.store.protocols import KeyStoreReader

__all__ = ["POLL_INTERVAL", "KeyWatcher", "open_private"]

log = logging.getLogger("authsvc.keys")

# The version of a set still to complete (private halves to decrypt, or unreadable for
# now): never the store's, so the next poll reads the store again.
_PARTIAL = object()

#: How often a server looks at the store; a change is served within this (CONTRACT: 1 s).
POLL_INTERVAL = 0.5


def open_private(record: KeyRecord, pem: bytes, passphrase: bytes | None) -> LoadedKey:
    """Decrypt one private key (blocking and slow with a passphrase: the KDF holds the GIL).

    KeyStoreError when it cannot be opened; the text names the kid and the
    setting, never key material.
    """
    try:
        key = load_private_key(pem, passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"private key {record.kid} cannot be opened with this AUTHSVC_KEY_PASSPHRASE "
            f"(written with another passphrase, or corrupt): {type(exc).__name__}"
        ) from None
    return LoadedKey(record.kid, record.alg, jose_key(key))


class KeyWatcher:
    """Loads the store into ``ring`` at start (``load``) and on every change (``poll``)."""

    def __init__(self, store: KeyStoreReader, ring: KeyRing, passphrase: bytes | None) -> None:
        self.store = store
        self.ring = ring
        self._passphrase = passphrase
        self._loading = threading.Lock()  # one load at a time; readers never wait for it
        self._logged_unloadable: set[str] = set()
        self.polls = 0  # completed polls, so a test can wait for the next one

    def load(self) -> None:
        """Read the store now (start-up, the CLI); KeyStoreError if the signing key cannot load."""
        with self._loading:
            self.ring.install(self._read(self.store.read(), self.store.version()))
        keys = self.ring.keys
        current = keys.timetable.signing(self.ring.clock.now())
        if current is not None and current.kid in keys.unloadable:
            raise KeyStoreError(
                f"signing key {current.kid} cannot be opened with this AUTHSVC_KEY_PASSPHRASE "
                "(written with another passphrase, or corrupt)"
            )

    def poll(self) -> None:
        """Reload if the store changed (blocking I/O and decryption: a worker thread's job)."""
        with self._loading:
            try:
                version = self.store.version()
                keys = self.ring.keys_unchecked()
                # A missing private file may be put back (cheap to look for again); a key
                # that did not decrypt is tried again only when the store changes, one
                # that could not be read (the store's database away) at every poll.
                if version != keys.version or self._missing_came_back(keys):
                    doc = self.store.read()
                    first = self._read(doc, version, decrypt=False)
                    if first.loading:
                        self.ring.install(replace(first, version=_PARTIAL))
                        self.ring.install(self._read(doc, version))
                    else:
                        self.ring.install(first)
                else:
                    self.ring.store_readable()
            except KeyStoreError as exc:
                self.ring.store_failing(exc)
            finally:
                self.polls += 1

    def _missing_came_back(self, keys: KeySet) -> bool:
        return any(self.store.read_private(kid) is not None for kid in keys.missing)

    def _read(self, doc: KeySetDoc, version: object | None, *, decrypt: bool = True) -> KeySet:
        """The key set of ``doc``; without ``decrypt``, private halves not yet in memory are
        left out and listed as ``loading``."""
        lifetimes = self.ring.lifetimes
        timetable = Timetable(doc.keys, lifetimes)
        now = self.ring.clock.now()
        previous = self.ring.keys_unchecked()
        public: dict[str, LoadedKey] = {}
        private: dict[str, LoadedKey] = {}
        unloadable: list[str] = []
        missing: list[str] = []
        loading: list[str] = []
        unreadable = False
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
                if not decrypt:
                    loading.append(record.kid)
                    continue
                try:
                    pem = self.store.read_private(record.kid)
                    if pem is None:
                        missing.append(record.kid)
                        continue
                except KeyStoreError as exc:
                    unreadable = True
                    self._unloadable(record.kid, unloadable, exc)
                    continue
                try:
                    loaded = open_private(record, pem, self._passphrase)
                except KeyStoreError as exc:
                    self._unloadable(record.kid, unloadable, exc)
            if loaded is not None:
                private[record.kid] = loaded
        last = timetable.last()
        return KeySet(
            doc=doc,
            timetable=timetable,
            version=_PARTIAL if unreadable else version,
            public=public,
            private=private,
            unloadable=tuple(unloadable),
            missing=tuple(missing),
            loading=tuple(loading),
            overdue=(last.kid, last.sign_from + lifetimes.rotation_period) if last else None,
            generation=previous.generation + 1,
        )

    def _unloadable(self, kid: str, unloadable: list[str], error: KeyStoreError) -> None:
        unloadable.append(kid)
        if kid not in self._logged_unloadable:
            self._logged_unloadable.add(kid)
            log.error("%s; this server will not sign with it", error)


def _import_public(jwk: dict[str, Any]) -> JoseKey:
    from joserfc.jwk import JWKRegistry

    data = {k: v for k, v in jwk.items() if k not in ("use", "alg", "kid")}
    return JWKRegistry.import_key(data)  # type: ignore[return-value]
