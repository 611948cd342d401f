"""Changes to the key set: the first key, scheduled rotation, revocation, pruning.

Every change runs under the store's lock, re-reads the store inside it, plans
from the timetable, and commits by replacing the manifest once — after any new
private key is on disk and before any old one is deleted. A crash at any
moment therefore leaves a manifest that names only keys whose private halves
exist (or were deliberately deleted), and a leftover file is removed by the
next run.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.keys.generate import GeneratedKey, generate_key, private_pem
from authsvc.keys.manager import CHECK_INTERVAL
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable

__all__ = ["Change", "RotationPlan", "create_first_key", "plan_rotation", "revoke_key", "rotate"]

audit = logging.getLogger("authsvc.audit")

LOCK_TIMEOUT = 60.0
# A new key enters the JWKS servers serve up to CHECK_INTERVAL after the run
# writes it, so it signs KEY_PREPUBLISH after that; one more second covers the
# run's own writes and caches that count max-age from when the response arrived.
PROPAGATION = CHECK_INTERVAL + 1.0


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a rotation run's report."""

    action: str
    kid: str
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.kid} {self.detail}".rstrip()


@dataclass
class RotationPlan:
    """What a run will do; ``new_alg`` set means a key is to be generated."""

    changes: list[Change] = field(default_factory=list)
    new_alg: str | None = None
    new_sign_from: float | None = None
    delete_private: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _make_key(alg: str, passphrase: bytes | None) -> tuple[GeneratedKey, bytes]:
    generated = generate_key(alg)
    return generated, private_pem(generated.private_key, passphrase)


def _write_new(
    store: FileKeyStore, fresh: tuple[GeneratedKey, bytes], now: float, sign_from: float
) -> KeyRecord:
    """Write a new key's private half (not yet in the manifest) and return its record."""
    generated, pem = fresh
    store.write_private(generated.kid, pem)
    return KeyRecord(generated.kid, generated.alg, generated.public_jwk, created_at=now, sign_from=sign_from)


def _generate(
    store: FileKeyStore, alg: str, now: float, sign_from: float, passphrase: bytes | None
) -> KeyRecord:
    """Generate a key pair and write its private half (not yet in the manifest)."""
    return _write_new(store, _make_key(alg, passphrase), now, sign_from)


def _write_failed(store: FileKeyStore, exc: OSError) -> KeyStoreError:
    """The one-line error for a write the store refused (disk full, permission denied)."""
    return KeyStoreError(f"cannot write key store {store.describe()}: {exc.strerror}")


def _commit(store: FileKeyStore, doc: KeySetDoc, new: KeyRecord | None) -> None:
    """Replace the manifest; undo a new private key if the manifest was not replaced."""
    try:
        store.write(KeySetDoc(keys=doc.keys, generation=doc.generation + 1))
    except OSError as exc:
        # The rename may have happened before the failure (a failed fsync of the
        # directory): then the manifest names the new key and its file must stay.
        if new is not None and not _names(store, new.kid):
            store.delete_private(new.kid)
        raise _write_failed(store, exc) from None


def _names(store: FileKeyStore, kid: str) -> bool:
    try:
        return store.read().find(kid) is not None
    except KeyStoreError:
        return True  # unknown: keep the file; a later run removes it if it is an orphan


def _remove_leftovers(store: FileKeyStore, doc: KeySetDoc) -> None:
    """Private files the manifest does not need: crash leftovers and retired keys."""
    needed = {k.kid for k in doc.keys if k.private_deleted_at is None}
    with contextlib.suppress(OSError):
        for kid in store.private_kids() - needed:
            store.delete_private(kid)
        store.clean_temporaries()


def _require_keys(doc: KeySetDoc, store: FileKeyStore) -> None:
    if not doc.keys:
        raise KeyStoreError(f"key store {store.describe()} is empty; `authsvc serve` creates the first key")


def create_first_key(store: FileKeyStore, alg: str, clock: Clock, passphrase: bytes | None) -> Change | None:
    """Give an empty store its first key, signing at once. Only ``serve`` calls this."""
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        if doc.keys:
            return None
        now = clock.now()
        try:
            record = _generate(store, alg, now, now, passphrase)
        except OSError as exc:
            raise _write_failed(store, exc) from None
        _commit(store, KeySetDoc(keys=(record,), generation=doc.generation), record)
        _remove_leftovers(store, store.read())
    audit.info("key created", extra={"event": "key.created", "kid": record.kid, "alg": alg})
    return Change("created", record.kid, f"{alg}, first key, signing now")


def plan_rotation(doc: KeySetDoc, lifetimes: Lifetimes, now: float, alg: str, *, force: bool) -> RotationPlan:
    """Pure: what the timetable asks for at ``now`` (see CONTRACT.md, Keys).

    A new key signs ``KEY_PREPUBLISH`` + ``PROPAGATION`` after this run writes
    it: servers notice the store change within a second, and only then does
    the key appear in the JWKS they serve.
    """
    plan = RotationPlan()
    table = Timetable(doc.keys, lifetimes)
    current = table.signing(now)
    lead = lifetimes.prepublish + PROPAGATION
    if current is None:
        plan.new_alg, plan.new_sign_from = alg, now
        plan.changes.append(Change("create", "(new)", f"{alg}, no key can sign: signs now"))
    else:
        last = table.last() or current  # the key that signs last: a pending successor, or the current key
        pending = last.kid != current.kid
        period_end = current.sign_from + lifetimes.rotation_period
        reason = None
        if last.alg != alg:
            # A pending successor of the old algorithm still signs until this key takes over.
            plan.new_sign_from = max(now + lead, last.sign_from)
            reason = f"algorithm changes from {last.alg}"
        elif pending:
            pass
        elif force:
            plan.new_sign_from, reason = now + lead, "forced"
        elif now >= period_end - lead:
            plan.new_sign_from, reason = max(period_end, now + lead), "scheduled"
        if reason is not None:
            assert plan.new_sign_from is not None
            plan.new_alg = alg
            plan.changes.append(
                Change(
                    "create",
                    "(new)",
                    f"{alg}, {reason}: published now, signs from {_iso(plan.new_sign_from)}",
                )
            )
    for record in doc.keys:
        state = table.state(record, now)
        life = max(lifetimes.access_ttl, lifetimes.refresh_ttl) + lifetimes.skew
        revoked_long_ago = record.revoked_at is not None and now >= record.revoked_at + life
        if state is KeyState.PRUNABLE or revoked_long_ago:
            plan.prune.append(record.kid)
            plan.changes.append(Change("prune", record.kid, "nothing it signed can still be valid"))
        elif record.private_deleted_at is None and state not in (KeyState.PENDING, KeyState.SIGNING):
            plan.delete_private.append(record.kid)
            plan.changes.append(Change("destroy-private", record.kid, f"stopped signing ({state.value})"))
    return plan


def rotate(
    store: FileKeyStore,
    lifetimes: Lifetimes,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> list[Change]:
    """One cron run: plan under the lock and apply it. Idempotent."""
    doc = store.read()
    _require_keys(doc, store)  # before the lock, which would create a missing directory
    if dry_run:
        return plan_rotation(doc, lifetimes, clock.now(), alg, force=force).changes
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        _require_keys(doc, store)
        now = clock.now()
        plan = plan_rotation(doc, lifetimes, now, alg, force=force)
        if plan.empty:
            _remove_leftovers(store, doc)
            return []
        fresh: tuple[GeneratedKey, bytes] | None = None
        if plan.new_alg is not None:
            # Making a key pair can take a while (RSA, a passphrase): plan again as of
            # the moment it is published, so it sits in the JWKS for the full lead.
            fresh = _make_key(plan.new_alg, passphrase)
            now = clock.now()
            plan = plan_rotation(doc, lifetimes, now, alg, force=force)
            if plan.new_alg is not None and plan.new_alg != fresh[0].alg:
                fresh = _make_key(plan.new_alg, passphrase)
        keys = [k for k in doc.keys if k.kid not in plan.prune]
        keys = [k.with_changes(private_deleted_at=now) if k.kid in plan.delete_private else k for k in keys]
        new: KeyRecord | None = None
        changes = list(plan.changes)
        if plan.new_alg is not None:
            assert plan.new_sign_from is not None
            assert fresh is not None
            try:
                new = _write_new(store, fresh, now, plan.new_sign_from)
            except OSError as exc:
                raise _write_failed(store, exc) from None
            keys.append(new)
            changes = [Change("created", new.kid, c.detail) if c.action == "create" else c for c in changes]
        committed = KeySetDoc(keys=tuple(keys), generation=doc.generation)
        _commit(store, committed, new)
        _remove_leftovers(store, committed)
    for change in changes:
        audit.info(f"key {change.action}", extra={"event": f"key.{change.action}", "kid": change.kid})
    return changes


def revoke_key(
    store: FileKeyStore, kid: str, clock: Clock, alg: str, passphrase: bytes | None
) -> list[Change]:
    """Emergency: take ``kid`` out of the JWKS and out of signing now.

    If it was signing, its pending successor signs at once, else a new key
    does (caches may miss that key until they re-fetch: the price of an
    emergency). Every token it signed is refused here from now on.
    """
    _require_keys(store.read(), store)  # before the lock, which would create a missing directory
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        _require_keys(doc, store)
        record = doc.find(kid)
        if record is None:
            raise KeyStoreError("no key with that kid in the store")
        if record.revoked_at is not None:
            return []
        now = clock.now()
        table = Timetable(doc.keys, _NO_LIFETIMES)
        signing = table.signing(now)
        was_signing = signing is not None and signing.kid == kid
        changes = [Change("revoked", kid, "removed from the JWKS and from signing")]
        keys = [
            k.with_changes(revoked_at=now, private_deleted_at=now) if k.kid == kid else k for k in doc.keys
        ]
        new: KeyRecord | None = None
        if was_signing:
            successor = table.successor(kid)
            if successor is not None and successor.sign_from > now and successor.private_deleted_at is None:
                keys = [k.with_changes(sign_from=now) if k.kid == successor.kid else k for k in keys]
                changes.append(Change("signing", successor.kid, "pending successor signs now"))
            else:
                try:
                    new = _generate(store, alg, now, now, passphrase)
                except OSError as exc:
                    raise _write_failed(store, exc) from None
                keys.append(new)
                changes.append(Change("created", new.kid, f"{alg}, replacement, signing now"))
        committed = KeySetDoc(keys=tuple(keys), generation=doc.generation)
        _commit(store, committed, new)
        _remove_leftovers(store, committed)
    for change in changes:
        audit.warning(f"key {change.action}", extra={"event": f"key.{change.action}", "kid": change.kid})
    return changes


# Revocation only needs slot order, which does not depend on lifetimes.
_NO_LIFETIMES = Lifetimes(
    access_ttl=1, refresh_ttl=1, skew=0, rotation_period=1, prepublish=1, jwks_max_age=1
)
