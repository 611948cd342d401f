"""What a rotation run will do: pure, from the key set, the lifetimes and the clock.

``plan_rotation`` reads the timetable (CONTRACT.md, Keys) and returns the
changes a run makes; ``keys.rotation`` applies them under the store's lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from authsvc.keys.encryption import ENCRYPTION_CURRENT
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable
from authsvc.keys.watcher import POLL_INTERVAL

__all__ = ["PROPAGATION", "Change", "RotationPlan", "needs_reencryption", "plan_rotation"]

# A new key enters the JWKS servers serve up to a poll interval after the run
# writes it (they look every POLL_INTERVAL), so it signs KEY_PREPUBLISH after
# that; the rest of the two seconds covers the run's own writes and caches that
# count max-age from when the response arrived.
PROPAGATION = 2.0
assert POLL_INTERVAL < PROPAGATION


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


def needs_reencryption(record: KeyRecord, encryption: str | None) -> bool:
    """Whether a kept private key is rewritten: the run writes ``ENCRYPTION_CURRENT`` (a passphrase
    is set) and the manifest records the key as stored otherwise."""
    return (
        encryption == ENCRYPTION_CURRENT
        and record.private_deleted_at is None
        and record.encryption != ENCRYPTION_CURRENT
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


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
        elif needs_reencryption(record, encryption):
            plan.reencrypt.append(record.kid)
            plan.changes.append(Change("re-encrypt", record.kid, f"private key now {ENCRYPTION_CURRENT}"))
    return plan
