"""Changes to the key set: the first key, scheduled rotation, revocation, pruning.

Every change runs under the store's lock, re-reads the store inside it, proves
the passphrase opens the keys it still needs (``preflight``), plans from the
timetable, and commits by replacing the manifest once — after any new or
re-encrypted private key is on disk and before any old one is deleted. A
crash at any moment therefore leaves a manifest that names only keys whose
private halves exist (or were deliberately deleted), and a leftover file is
removed by the next run.

With ``standby`` (``AUTHSVC_KEY_STANDBY``) the store keeps a published key
with no signing slot: a rotation promotes it to be the successor (its
``sign_from`` computed as a new successor's would be) and publishes a new
standby in the same write; revoking the signing key with no pending successor
makes it sign at once. Every JWKS cache already holds it, so verifiers that
re-fetch only after a cooldown see no failure. Without ``standby`` nothing is
created as a standby; one left in the store is still promoted when a key is
needed.

Every write also re-encrypts the private keys it keeps whose manifest record
says they are not encrypted as ``encryption.ENCRYPTION_CURRENT`` (older
manifests: 2,048 PBKDF2 iterations), when a passphrase is set.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.keys.encryption import ENCRYPTION_CURRENT, encrypt_private_key, encryption_for
from authsvc.keys.generate import GeneratedKey, generate_key, private_pem
from authsvc.keys.manager import CHECK_INTERVAL
from authsvc.keys.model import STANDBY_SIGN_FROM, KeyRecord, KeySetDoc
from authsvc.keys.preflight import check_passphrase
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable

__all__ = [
    "Change",
    "RotationPlan",
    "create_first_key",
    "plan_rotation",
    "preview_rotation",
    "revoke_key",
    "rotate",
]

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
    """What a run will do.

    ``new_alg`` set: a key is generated to sign from ``new_sign_from``;
    ``promote`` set: that standby becomes the key signing from ``new_sign_from``
    instead; ``new_standby_alg`` set: a new standby is generated.
    """

    changes: list[Change] = field(default_factory=list)
    new_alg: str | None = None
    new_sign_from: float | None = None
    promote: str | None = None
    new_standby_alg: str | None = None
    discard: list[str] = field(default_factory=list)
    delete_private: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)
    reencrypt: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _make_key(alg: str, passphrase: bytes | None) -> tuple[GeneratedKey, bytes]:
    generated = generate_key(alg)
    return generated, private_pem(generated.private_key, passphrase)


def _write_new(
    store: FileKeyStore,
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


def _generate(
    store: FileKeyStore,
    alg: str,
    now: float,
    sign_from: float,
    passphrase: bytes | None,
    *,
    standby: bool = False,
) -> KeyRecord:
    """Generate a key pair and write its private half (not yet in the manifest)."""
    try:
        return _write_new(store, _make_key(alg, passphrase), now, sign_from, passphrase, standby=standby)
    except OSError as exc:
        raise _write_failed(store, exc) from None


def _write_failed(store: FileKeyStore, exc: OSError) -> KeyStoreError:
    """The one-line error for a write the store refused (disk full, permission denied)."""
    return KeyStoreError(f"cannot write key store {store.describe()}: {exc.strerror}")


def _commit(store: FileKeyStore, doc: KeySetDoc, new: list[KeyRecord]) -> None:
    """Replace the manifest; undo new private keys if the manifest was not replaced."""
    try:
        store.write(KeySetDoc(keys=doc.keys, generation=doc.generation + 1))
    except OSError as exc:
        # The rename may have happened before the failure (a failed fsync of the
        # directory): then the manifest names the new keys and their files must stay.
        for record in new:
            if not _names(store, record.kid):
                store.delete_private(record.kid)
        raise _write_failed(store, exc) from None


def _names(store: FileKeyStore, kid: str) -> bool:
    try:
        return store.read().find(kid) is not None
    except KeyStoreError:
        return True  # unknown: keep the file; a later run removes it if it is an orphan


def _reencrypt(
    store: FileKeyStore,
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
                raise _write_failed(store, exc) from None
            record = record.with_changes(encryption=target)
        elif record.encryption is None and record.kid in opened:
            record = record.with_changes(encryption=target)
        out.append(record)
    return out


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


def create_first_key(
    store: FileKeyStore, alg: str, clock: Clock, passphrase: bytes | None, *, standby: bool = False
) -> Change | None:
    """Give an empty store its first key, signing at once (and a standby). Only ``serve`` calls this."""
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        if doc.keys:
            return None
        now = clock.now()
        records = [_generate(store, alg, now, now, passphrase)]
        if standby:
            records.append(_generate(store, alg, now, now, passphrase, standby=True))
        _commit(store, KeySetDoc(keys=tuple(records), generation=doc.generation), records)
        _remove_leftovers(store, store.read())
    record = records[0]
    audit.info("key created", extra={"event": "key.created", "kid": record.kid, "alg": alg})
    if standby:
        audit.info("key created", extra={"event": "key.created", "kid": records[1].kid, "alg": alg})
        return Change("created", record.kid, f"{alg}, first key, signing now; standby {records[1].kid}")
    return Change("created", record.kid, f"{alg}, first key, signing now")


def plan_rotation(
    doc: KeySetDoc,
    lifetimes: Lifetimes,
    now: float,
    alg: str,
    *,
    force: bool,
    standby: bool = False,
    encryption: str | None = None,
) -> RotationPlan:
    """Pure: what the timetable asks for at ``now`` (see CONTRACT.md, Keys).

    A new key signs ``KEY_PREPUBLISH`` + ``PROPAGATION`` after this run writes
    it: servers notice the store change within a second, and only then does
    the key appear in the JWKS they serve. A promoted standby gets exactly
    that ``sign_from`` too. ``encryption``: what this run writes
    (``encryption_for(passphrase)``); kept keys recorded otherwise are
    re-encrypted when it is ``ENCRYPTION_CURRENT``.
    """
    plan = RotationPlan()
    table = Timetable(doc.keys, lifetimes)
    current = table.signing(now)
    spare = table.standby(now)
    usable = spare if spare is not None and spare.alg == alg and spare.private_deleted_at is None else None
    lead = lifetimes.prepublish + PROPAGATION
    reason = None
    if current is None:
        plan.new_sign_from, reason = now, "no key can sign"
    else:
        last = table.last() or current  # the key that signs last: a pending successor, or the current key
        pending = last.kid != current.kid
        period_end = current.sign_from + lifetimes.rotation_period
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
        signs = "signs now" if plan.new_sign_from == now else f"signs from {_iso(plan.new_sign_from)}"
        if usable is not None:
            plan.promote = usable.kid
            plan.changes.append(
                Change(
                    "promote",
                    usable.kid,
                    f"{alg}, {reason}: standby since {_iso(usable.created_at)}, {signs}",
                )
            )
        else:
            plan.new_alg = alg
            detail = f"{reason}: {signs}" if current is None else f"{reason}: published now, {signs}"
            plan.changes.append(Change("create", "(new)", f"{alg}, {detail}"))
    if standby:
        if spare is not None and spare.alg != alg:
            plan.discard.append(spare.kid)
            plan.changes.append(
                Change("discard", spare.kid, f"standby of {spare.alg}, never signed: replaced by {alg}")
            )
        if spare is None or spare.alg != alg or plan.promote is not None:
            plan.new_standby_alg = alg
            plan.changes.append(
                Change("create", "(new)", f"{alg}, standby: published now, signs when needed")
            )
    for record in doc.keys:
        state = table.state(record, now)
        life = max(lifetimes.access_ttl, lifetimes.refresh_ttl) + lifetimes.skew
        revoked_long_ago = record.revoked_at is not None and now >= record.revoked_at + life
        if record.kid in plan.discard:
            continue
        if state is KeyState.PRUNABLE or revoked_long_ago:
            plan.prune.append(record.kid)
            plan.changes.append(Change("prune", record.kid, "nothing it signed can still be valid"))
        elif record.private_deleted_at is None and not table.needs_private(record, now):
            plan.delete_private.append(record.kid)
            plan.changes.append(Change("destroy-private", record.kid, f"stopped signing ({state.value})"))
        elif (
            encryption == ENCRYPTION_CURRENT
            and record.private_deleted_at is None
            and record.encryption != ENCRYPTION_CURRENT
        ):
            plan.reencrypt.append(record.kid)
            plan.changes.append(Change("re-encrypt", record.kid, f"private key now {ENCRYPTION_CURRENT}"))
    return plan


def preview_rotation(
    store: FileKeyStore,
    lifetimes: Lifetimes,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    force: bool = False,
    standby: bool = False,
) -> list[Change]:
    """``--dry-run``: the plan as of now, after the same passphrase check; writes nothing."""
    doc = store.read()
    _require_keys(doc, store)
    now = clock.now()
    check_passphrase(store, doc, passphrase, now)
    return plan_rotation(
        doc, lifetimes, now, alg, force=force, standby=standby, encryption=encryption_for(passphrase)
    ).changes


def rotate(
    store: FileKeyStore,
    lifetimes: Lifetimes,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    standby: bool = False,
) -> list[Change]:
    """One cron run: check the passphrase, plan under the lock and apply it. Idempotent."""
    if dry_run:
        return preview_rotation(store, lifetimes, clock, alg, passphrase, force=force, standby=standby)
    _require_keys(store.read(), store)  # before the lock, which would create a missing directory
    target = encryption_for(passphrase)
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        _require_keys(doc, store)
        opened = check_passphrase(store, doc, passphrase, clock.now())
        plan = plan_rotation(
            doc, lifetimes, clock.now(), alg, force=force, standby=standby, encryption=target
        )
        if plan.empty:
            _remove_leftovers(store, doc)
            return []
        # Making key pairs can take a while (RSA, a passphrase): plan again as of the
        # moment they are published, so a new successor sits in the JWKS for the full lead.
        pool: dict[str, list[tuple[GeneratedKey, bytes]]] = {}
        for needed in (plan.new_alg, plan.new_standby_alg):
            if needed is not None:
                pool.setdefault(needed, []).append(_make_key(needed, passphrase))
        now = clock.now()
        plan = plan_rotation(doc, lifetimes, now, alg, force=force, standby=standby, encryption=target)

        def fresh(wanted: str) -> tuple[GeneratedKey, bytes]:
            ready = pool.get(wanted)
            return ready.pop() if ready else _make_key(wanted, passphrase)

        gone = set(plan.prune) | set(plan.discard)
        keys = [k for k in doc.keys if k.kid not in gone]
        keys = [k.with_changes(private_deleted_at=now) if k.kid in plan.delete_private else k for k in keys]
        if plan.promote is not None:
            assert plan.new_sign_from is not None
            keys = [
                k.with_changes(standby=False, sign_from=plan.new_sign_from) if k.kid == plan.promote else k
                for k in keys
            ]
        keys = _reencrypt(store, keys, plan.reencrypt, opened, passphrase)
        new: list[KeyRecord] = []
        try:
            if plan.new_alg is not None:  # the plan lists its "create" lines in this order
                assert plan.new_sign_from is not None
                new.append(_write_new(store, fresh(plan.new_alg), now, plan.new_sign_from, passphrase))
            if plan.new_standby_alg is not None:
                new.append(_write_new(store, fresh(plan.new_standby_alg), now, now, passphrase, standby=True))
        except OSError as exc:
            for record in new:
                store.delete_private(record.kid)
            raise _write_failed(store, exc) from None
        created = iter(new)
        changes = [
            Change("created", next(created).kid, c.detail) if c.action == "create" else c
            for c in plan.changes
        ]
        keys.extend(new)
        committed = KeySetDoc(keys=tuple(keys), generation=doc.generation)
        _commit(store, committed, new)
        _remove_leftovers(store, committed)
    for change in changes:
        audit.info(f"key {change.action}", extra={"event": f"key.{change.action}", "kid": change.kid})
    return changes


def revoke_key(
    store: FileKeyStore,
    kid: str,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    standby: bool = False,
) -> list[Change]:
    """Emergency: take ``kid`` out of the JWKS and out of signing now.

    If it was signing, its pending successor signs at once, else the standby
    does (every cache already holds it), else a new key (caches may miss that
    key until they re-fetch: the price of an emergency without a standby).
    With ``standby``, a new standby is published whenever none is left. Every
    token it signed is refused here from now on.
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
        opened = check_passphrase(store, doc, passphrase, now, exclude=(kid,))
        table = Timetable(doc.keys, _NO_LIFETIMES)
        signing = table.signing(now)
        spare = table.standby(now)
        was_signing = signing is not None and signing.kid == kid
        changes = [Change("revoked", kid, "removed from the JWKS and from signing")]
        keys = [
            k.with_changes(revoked_at=now, private_deleted_at=now) if k.kid == kid else k for k in doc.keys
        ]
        if spare is not None and spare.kid == kid:
            spare = None
        new: list[KeyRecord] = []
        if was_signing:
            successor = table.successor(kid)
            if successor is not None and successor.sign_from > now and successor.private_deleted_at is None:
                keys = [k.with_changes(sign_from=now) if k.kid == successor.kid else k for k in keys]
                changes.append(Change("signing", successor.kid, "pending successor signs now"))
            elif spare is not None and spare.private_deleted_at is None:
                keys = [
                    k.with_changes(standby=False, sign_from=now) if k.kid == spare.kid else k for k in keys
                ]
                changes.append(Change("signing", spare.kid, "standby signs now"))
                spare = None
            else:
                new.append(_generate(store, alg, now, now, passphrase))
                changes.append(Change("created", new[-1].kid, f"{alg}, replacement, signing now"))
        if standby and spare is None:
            new.append(_generate(store, alg, now, now, passphrase, standby=True))
            changes.append(Change("created", new[-1].kid, f"{alg}, standby: published now"))
        weak = [
            k.kid
            for k in keys
            if passphrase and k.private_deleted_at is None and k.encryption != ENCRYPTION_CURRENT
        ]
        keys = _reencrypt(store, keys, weak, opened, passphrase)
        keys.extend(new)
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
