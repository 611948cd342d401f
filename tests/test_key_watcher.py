"""The watcher installs a key revocation before it decrypts anything.

Decrypting a passphrase-protected private key holds the GIL for its whole KDF,
a good part of a second on a loaded host. A revocation that brings a new key
(the standby replacement, or the replacement of a revoked signing key) must
not stay trusted while that key decrypts: the soak saw a revoked key accepted
by one instance for seconds. Here the decryption is held open by the store
itself, so the order is observed, not timed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.clock import FrozenClock
from authsvc.errors import KeyStoreError
from authsvc.keys.ring import KeyRing
from authsvc.keys.rotation import create_first_key, revoke_key
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import Lifetimes
from authsvc.keys.watcher import KeyWatcher

T = 1_800_000_000.0
LT = Lifetimes(access_ttl=30, refresh_ttl=100, skew=2, rotation_period=100, prepublish=10, jwks_max_age=5)
PASSPHRASE = b"watcher test passphrase"


class HeldStore(FileKeyStore):
    """A file key store whose private reads wait, once armed, until the test lets them go,
    or fail (``failures``) as a database key store does while its database is away."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.armed = False
        self.failures = 0
        self.reading = threading.Event()
        self.release = threading.Event()

    def read_private(self, kid: str) -> bytes | None:
        if self.failures:
            self.failures -= 1
            raise KeyStoreError("key store unreadable for a moment")
        if self.armed:
            self.reading.set()
            assert self.release.wait(30), "the test never released the read"
        return super().read_private(kid)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[HeldStore]:
    store = HeldStore(tmp_path / "keys")
    yield store
    store.release.set()


def _serving(store: HeldStore, *, standby: bool) -> tuple[FrozenClock, KeyRing, KeyWatcher]:
    """A server's ring and watcher on ``store`` (a first key, and a standby if asked)."""
    clock = FrozenClock(T)
    create_first_key(store, "EdDSA", clock, PASSPHRASE, standby=standby)
    ring = KeyRing(LT, clock, "EdDSA")
    watcher = KeyWatcher(store, ring, PASSPHRASE)
    watcher.load()
    return clock, ring, watcher


def _poll_in_background(watcher: KeyWatcher, store: HeldStore) -> threading.Thread:
    store.armed = True
    thread = threading.Thread(target=watcher.poll)
    thread.start()
    assert store.reading.wait(30), "the poll never read a private key"
    return thread


def test_a_revoked_signing_key_is_refused_while_the_new_standby_decrypts(held: HeldStore) -> None:
    clock, ring, watcher = _serving(held, standby=True)
    old = ring.signing_key().kid
    standby = ring.timetable.standby(clock.now())
    assert standby is not None and ring.access_token_key(old) is not None

    clock.advance(1)
    revoke_key(held, old, clock, "EdDSA", PASSPHRASE, standby=True)  # the standby signs; a new standby
    thread = _poll_in_background(watcher, held)
    try:
        # The new standby's private half is being read and decrypted right now.
        assert ring.access_token_key(old) is None
        assert ring.signing_key().kid == standby.kid
        assert ring.keys.loading and standby.kid not in ring.keys.loading
    finally:
        held.release.set()
        thread.join(30)
    assert not ring.keys.loading
    new_standby = ring.timetable.standby(clock.now())
    assert new_standby is not None and new_standby.kid in ring.keys.private


def test_a_signing_key_still_decrypting_refuses_to_sign_then_signs(held: HeldStore) -> None:
    clock, ring, watcher = _serving(held, standby=False)
    old = ring.signing_key().kid
    clock.advance(1)
    revoke_key(held, old, clock, "EdDSA", PASSPHRASE)  # no successor, no standby: a new key signs now
    thread = _poll_in_background(watcher, held)
    try:
        assert ring.access_token_key(old) is None
        with pytest.raises(KeyStoreError, match="still being decrypted"):
            ring.signing_key()
    finally:
        held.release.set()
        thread.join(30)
    assert ring.signing_key().kid != old


def test_a_private_half_the_store_could_not_read_is_read_again_at_the_next_poll(held: HeldStore) -> None:
    clock, ring, watcher = _serving(held, standby=False)
    old = ring.signing_key().kid
    clock.advance(1)
    revoke_key(held, old, clock, "EdDSA", PASSPHRASE)  # a new key signs now
    held.failures = 1
    watcher.poll()  # the revocation is in; the new key's private half is not
    assert ring.access_token_key(old) is None
    with pytest.raises(KeyStoreError):
        ring.signing_key()
    watcher.poll()  # the store did not change, and still the read is tried again
    assert ring.signing_key().kid != old
