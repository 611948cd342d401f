"""Changes to the key set: the first key, rotation, revocation, pruning.

Every change runs under the store's lock, re-reads the store inside it, and
commits by replacing the manifest (after any new private key is on disk).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from authsvc.clock import Clock
from authsvc.keys.generate import generate_key, private_pem
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.store_file import FileKeyStore

__all__ = ["Change", "create_first_key"]

log = logging.getLogger("authsvc.audit")


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a rotation run's report."""

    action: str
    kid: str
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.kid} {self.detail}".rstrip()


def new_record(
    store: FileKeyStore, alg: str, now: float, sign_from: float, passphrase: bytes | None
) -> KeyRecord:
    """Generate a key pair and write its private half (not yet in the manifest)."""
    generated = generate_key(alg)
    store.write_private(generated.kid, private_pem(generated.private_key, passphrase))
    return KeyRecord(
        kid=generated.kid,
        alg=alg,
        public_jwk=generated.public_jwk,
        created_at=now,
        sign_from=sign_from,
    )


def create_first_key(
    store: FileKeyStore, alg: str, clock: Clock, passphrase: bytes | None
) -> Change | None:
    """Give an empty store its first key, signing at once. Only ``serve`` calls this."""
    with store.lock():
        doc = store.read()
        if doc.keys:
            return None
        now = clock.now()
        record = new_record(store, alg, now, now, passphrase)
        store.write(KeySetDoc(keys=(record,), generation=doc.generation + 1))
    change = Change("created", record.kid, f"{alg} first key, signing now")
    log.info("key created", extra={"event": "key.created", "kid": record.kid, "alg": alg})
    return change
