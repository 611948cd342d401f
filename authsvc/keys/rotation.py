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

from authsvc.clock import Clock
from authsvc.errors import KeyStoreError
from authsvc.events import Events, KeyChanged
from authsvc.keys.encryption import encryption_for
from authsvc.keys.generate import GeneratedKey
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.plan import Change, needs_reencryption, plan_rotation
from authsvc.keys.preflight import check_passphrase
from authsvc.keys.timetable import ORDER_ONLY, Lifetimes, Timetable
from authsvc.keys.writes import (
    LOCK_TIMEOUT,
    commit,
    generate,
    make_key,
    reencrypt,
    remove_leftovers,
    require_keys,
    write_failed,
    write_new,
)
from authsvc.store.protocols import KeyStore

__all__ = ["create_first_key", "preview_rotation", "revoke_key", "rotate"]


def create_first_key(
    store: KeyStore,
    alg: str,
    clock: Clock,
    passphrase: bytes | None,
    *,
    standby: bool = False,
    events: Events | None = None,
) -> Change | None:
    """Give an empty store its first key, signing at once (and a standby). Only ``serve`` calls this."""
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        if doc.keys:
            return None
        now = clock.now()
        records = [generate(store, alg, now, now, passphrase)]
        if standby:
            records.append(generate(store, alg, now, now, passphrase, standby=True))
        commit(store, KeySetDoc(keys=tuple(records), generation=doc.generation), records)
        remove_leftovers(store, store.read())
    record = records[0]
    published = events or Events()
    for created in records:
        published.publish(KeyChanged(action="created", kid=created.kid, alg=alg))
    if standby:
        return Change("created", record.kid, f"{alg}, first key, signing now; standby {records[1].kid}")
    return Change("created", record.kid, f"{alg}, first key, signing now")


def preview_rotation(
    store: KeyStore,
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
    require_keys(doc, store)
    now = clock.now()
    check_passphrase(store, doc, passphrase, now)
    return plan_rotation(
        doc, lifetimes, now, alg, force=force, standby=standby, encryption=encryption_for(passphrase)
    ).changes


def rotate(
    store: KeyStore,
    lifetimes: Lifetimes,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    standby: bool = False,
    events: Events | None = None,
) -> list[Change]:
    """One cron run: check the passphrase, plan under the lock and apply it. Idempotent."""
    if dry_run:
        return preview_rotation(store, lifetimes, clock, alg, passphrase, force=force, standby=standby)
    require_keys(store.read(), store)  # before the lock, which would create a missing directory
    target = encryption_for(passphrase)
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        require_keys(doc, store)
        opened = check_passphrase(store, doc, passphrase, clock.now())
        plan = plan_rotation(
            doc, lifetimes, clock.now(), alg, force=force, standby=standby, encryption=target
        )
        if plan.empty:
            remove_leftovers(store, doc)
            return []
        # Making key pairs can take a while (RSA, a passphrase): plan again as of the
        # moment they are published, so a new successor sits in the JWKS for the full lead.
        pool: dict[str, list[tuple[GeneratedKey, bytes]]] = {}
        for needed in (plan.new_alg, plan.new_standby_alg):
            if needed is not None:
                pool.setdefault(needed, []).append(make_key(needed, passphrase))
        now = clock.now()
        plan = plan_rotation(doc, lifetimes, now, alg, force=force, standby=standby, encryption=target)

        def fresh(wanted: str) -> tuple[GeneratedKey, bytes]:
            ready = pool.get(wanted)
            return ready.pop() if ready else make_key(wanted, passphrase)

        gone = set(plan.prune) | set(plan.discard)
        keys = [k for k in doc.keys if k.kid not in gone]
        keys = [k.with_changes(private_deleted_at=now) if k.kid in plan.delete_private else k for k in keys]
        if plan.promote is not None:
            assert plan.new_sign_from is not None
            keys = [
                k.with_changes(standby=False, sign_from=plan.new_sign_from) if k.kid == plan.promote else k
                for k in keys
            ]
        keys = reencrypt(store, keys, plan.reencrypt, opened, passphrase)
        new: list[KeyRecord] = []
        try:
            if plan.new_alg is not None:  # the plan lists its "create" lines in this order
                assert plan.new_sign_from is not None
                new.append(write_new(store, fresh(plan.new_alg), now, plan.new_sign_from, passphrase))
            if plan.new_standby_alg is not None:
                new.append(write_new(store, fresh(plan.new_standby_alg), now, now, passphrase, standby=True))
        except OSError as exc:
            for record in new:
                store.delete_private(record.kid)
            raise write_failed(store, exc) from None
        created = iter(new)
        changes = [
            Change("created", next(created).kid, c.detail) if c.action == "create" else c
            for c in plan.changes
        ]
        keys.extend(new)
        committed = KeySetDoc(keys=tuple(keys), generation=doc.generation)
        commit(store, committed, new)
        remove_leftovers(store, committed)
    _report(changes, events or Events(), emergency=False)
    return changes


def revoke_key(
    store: KeyStore,
    kid: str,
    clock: Clock,
    alg: str,
    passphrase: bytes | None,
    *,
    standby: bool = False,
    events: Events | None = None,
) -> list[Change]:
    """Emergency: take ``kid`` out of the JWKS and out of signing now.

    If it was signing, its pending successor signs at once, else the standby
    does (every cache already holds it), else a new key (caches may miss that
    key until they re-fetch: the price of an emergency without a standby).
    With ``standby``, a new standby is published whenever none is left. Every
    token it signed is refused here from now on.
    """
    require_keys(store.read(), store)  # before the lock, which would create a missing directory
    with store.lock(LOCK_TIMEOUT):
        doc = store.read()
        require_keys(doc, store)
        record = doc.find(kid)
        if record is None:
            raise KeyStoreError("no key with that kid in the store")
        if record.revoked_at is not None:
            return []
        now = clock.now()
        opened = check_passphrase(store, doc, passphrase, now, exclude=(kid,))
        table = Timetable(doc.keys, ORDER_ONLY)
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
                new.append(generate(store, alg, now, now, passphrase))
                changes.append(Change("created", new[-1].kid, f"{alg}, replacement, signing now"))
        if standby and spare is None:
            new.append(generate(store, alg, now, now, passphrase, standby=True))
            changes.append(Change("created", new[-1].kid, f"{alg}, standby: published now"))
        target = encryption_for(passphrase)
        weak = [k.kid for k in keys if needs_reencryption(k, target)]
        keys = reencrypt(store, keys, weak, opened, passphrase)
        keys.extend(new)
        committed = KeySetDoc(keys=tuple(keys), generation=doc.generation)
        commit(store, committed, new)
        remove_leftovers(store, committed)
    _report(changes, events or Events(), emergency=True)
    return changes


def _report(changes: list[Change], events: Events, *, emergency: bool) -> None:
    for change in changes:
        events.publish(KeyChanged(action=change.action, kid=change.kid, emergency=emergency))
