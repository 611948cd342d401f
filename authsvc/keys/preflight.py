"""Prove the passphrase opens the store's private keys before anything is written.

One host with a mistyped ``AUTHSVC_KEY_PASSPHRASE`` must not publish a key
that no other server can load (issue #13, finding 8). So every command that
opens the key store — ``serve``, ``keys list|rotate|revoke``,
``rotate_keys.py`` with or without ``--dry-run`` — first opens the private
keys it relies on with its passphrase and stops with one line naming the
setting if one does not open. A passphrase set while the keys are plaintext,
or unset while they are encrypted, is the same error.

Which keys: every private key the store still needs (pending, signing,
standby) for the commands that write or report, except the one a
``keys revoke`` takes out; only the signing key for ``serve``, which needs
nothing else to work and reports any other key it cannot load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from authsvc.errors import KeyStoreError
from authsvc.keys.encryption import load_private_key
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.timetable import ORDER_ONLY, Timetable
from authsvc.store.protocols import KeyStoreReader

__all__ = ["check_passphrase"]


def check_passphrase(
    store: KeyStoreReader,
    doc: KeySetDoc,
    passphrase: bytes | None,
    now: float,
    *,
    signing_only: bool = False,
    exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """The opened private keys by kid; KeyStoreError (one line) unless the passphrase opens them all.

    A store with keys must have at least one private key to check against.
    """
    table = Timetable(doc.keys, ORDER_ONLY)
    signing = table.signing(now)
    needed = [
        record
        for record in doc.keys
        if record.private_deleted_at is None
        and table.needs_private(record, now)
        and (not signing_only or (signing is not None and record.kid == signing.kid))
    ]
    skip = set(exclude)
    opened = _open(store, [r for r in needed if r.kid not in skip], passphrase)
    if not opened and skip:
        # Revoking the only key there is: it is the only evidence of the passphrase.
        opened = _open(store, needed, passphrase)
    if doc.keys and not opened:
        raise KeyStoreError(
            "AUTHSVC_KEY_PASSPHRASE cannot be checked: the key store has no private key of a key "
            "that may sign; nothing was changed"
        )
    return opened


def _open(store: KeyStoreReader, records: list[KeyRecord], passphrase: bytes | None) -> dict[str, Any]:
    opened: dict[str, Any] = {}
    for record in records:
        pem = store.read_private(record.kid)
        if pem is None:
            continue  # a crash or a careless hand; not a question of the passphrase
        try:
            opened[record.kid] = load_private_key(pem, passphrase)
        except (ValueError, TypeError):
            state = "is set" if passphrase else "is unset"
            raise KeyStoreError(
                f"AUTHSVC_KEY_PASSPHRASE does not open private key {record.kid} (the setting {state}; "
                "the key was written with another passphrase, or is corrupt); nothing was changed"
            ) from None
    return opened
