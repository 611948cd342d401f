"""Writing a key store safely: new private keys first, the manifest once, old keys last.

Every change a run makes goes through these, under the store's lock: a new
private key is on disk before the manifest names it, the manifest is replaced
once (the commit point), and private keys the manifest no longer needs are
deleted after it. A crash at any moment leaves a manifest that names only keys
whose private halves exist (or were deliberately deleted); a leftover file is
removed by the next run.
"""

from __future__ import annotations

import contextlib
from typing import Any

from authsvc.errors import KeyStoreError
from authsvc.keys.encryption import encrypt_private_key, encryption_for
from authsvc.keys.generate import GeneratedKey, generate_key, private_pem
from authsvc.keys.model import STANDBY_SIGN_FROM, KeyRecord, KeySetDoc
from authsvc.store.protocols import KeyStore

__all__ = [
    "LOCK_TIMEOUT",
    "commit",
    "generate",
    "make_key",
    "reencrypt",
    "remove_leftovers",
    "require_keys",
    "write_failed",
    "write_new",
]

LOCK_TIMEOUT = 60.0


def make_key(alg: str, passphrase: bytes | None) -> tuple[GeneratedKey, bytes]:
    generated = generate_key(alg)
    return generated, private_pem(generated.private_key, passphrase)


def write_new(
    store: KeyStore,
    fresh: tuple[GeneratedKey, bytes],
    now: float,
    sign_from: float,
    passphrase: bytes | None,
    *,
    standby: bool = False,
) -> KeyRecord:
    """Write a new key's private half (not yet in the manifest) and return its record."""
    generated, pem = fresh
    store.write_private(generated.kid, pem)
    return KeyRecord(
        generated.kid,
        generated.alg,
        generated.public_jwk,
        created_at=now,
        sign_from=STANDBY_SIGN_FROM if standby else sign_from,
        standby=standby,
        encryption=encryption_for(passphrase),
    )


def generate(
    store: KeyStore,
    alg: str,
    now: float,
    sign_from: float,
    passphrase: bytes | None,
    *,
    standby: bool = False,
) -> KeyRecord:
    """Generate a key pair and write its private half (not yet in the manifest)."""
    try:
        return write_new(store, make_key(alg, passphrase), now, sign_from, passphrase, standby=standby)
    except OSError as exc:
        raise write_failed(store, exc) from None


def write_failed(store: KeyStore, exc: OSError) -> KeyStoreError:
    """The one-line error for a write the store refused (disk full, permission denied)."""
    return KeyStoreError(f"cannot write key store {store.describe()}: {exc.strerror}")


def commit(store: KeyStore, doc: KeySetDoc, new: list[KeyRecord]) -> None:
    """Replace the manifest; undo new private keys if the manifest was not replaced."""
    try:
        store.write(KeySetDoc(keys=doc.keys, generation=doc.generation + 1))
    except OSError as exc:
        # The rename may have happened before the failure (a failed fsync of the
        # directory): then the manifest names the new keys and their files must stay.
        for record in new:
            if not _names(store, record.kid):
                store.delete_private(record.kid)
        raise write_failed(store, exc) from None


def _names(store: KeyStore, kid: str) -> bool:
    try:
        return store.read().find(kid) is not None
    except KeyStoreError:
        return True  # unknown: keep the file; a later run removes it if it is an orphan


def reencrypt(
    store: KeyStore,
    keys: list[KeyRecord],
    kids: list[str],
    opened: dict[str, Any],
    passphrase: bytes | None,
) -> list[KeyRecord]:
    """Rewrite the listed private keys with today's encryption; record how every kept key is stored.

    The passphrase check has opened each kept key with this passphrase, so a
    record written before encryption was recorded is known to be plaintext
    when no passphrase is set.
    """
    target = encryption_for(passphrase)
    out = []
    for record in keys:
        if record.kid in kids and record.kid in opened:
            try:
                store.write_private(record.kid, encrypt_private_key(opened[record.kid], passphrase))
            except OSError as exc:
                raise write_failed(store, exc) from None
            record = record.with_changes(encryption=target)
        elif record.encryption is None and record.kid in opened:
            record = record.with_changes(encryption=target)
        out.append(record)
    return out


def remove_leftovers(store: KeyStore, doc: KeySetDoc) -> None:
    """Private files the manifest does not need: crash leftovers and retired keys."""
    needed = {k.kid for k in doc.keys if k.private_deleted_at is None}
    with contextlib.suppress(OSError):
        for kid in store.private_kids() - needed:
            store.delete_private(kid)
        store.clean_temporaries()


def require_keys(doc: KeySetDoc, store: KeyStore) -> None:
    if not doc.keys:
        raise KeyStoreError(f"key store {store.describe()} is empty; `authsvc serve` creates the first key")
