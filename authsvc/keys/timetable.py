"""Pure key timetable: states of keys from their timestamps and "now".

A key's signing slot is ``[sign_from, sign_until)`` where ``sign_until`` is the
earlier of its revocation and the next slot's start. A key revoked before it
ever signed has no slot. From the slot follow the rest (CONTRACT.md, Keys):

* published in the JWKS from creation until the last access token it could
  have signed expires (``sign_until + access TTL + skew``), unless revoked;
* its private half is needed only inside its slot;
* its public half is kept for our own checks of refresh tokens until
  ``sign_until + refresh TTL + skew``.

A standby key (``record.standby``) has no slot: it is published from its
creation until it is revoked, never leaves the JWKS on a schedule, and keeps
its private half, so a rotation or an emergency revocation can make it sign
with a key every JWKS cache already holds. Promoting it (clearing the flag,
setting ``sign_from``) is a change of the store, not of the clock.

Nothing here does I/O or reads the clock: callers pass ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from authsvc.keys.model import KeyRecord

__all__ = ["ORDER_ONLY", "KeyState", "Lifetimes", "Slot", "Timetable"]

_INF = math.inf


class KeyState(StrEnum):
    PENDING = "pending"  # published, not yet signing
    SIGNING = "signing"
    RETIRING = "retiring"  # published, no longer signing
    EXPIRED = "expired"  # gone from the JWKS, public half kept for refresh tokens
    PRUNABLE = "prunable"  # nothing it signed can still be valid
    REVOKED = "revoked"
    STANDBY = "standby"  # published, no signing slot until promoted


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The settings the timetable depends on, in seconds."""

    access_ttl: int
    refresh_ttl: int
    skew: int
    rotation_period: int
    prepublish: int
    jwks_max_age: int


#: For questions that only the order of the slots answers (which key signs now, which
#: still needs its private half): the lifetimes do not matter to them.
ORDER_ONLY = Lifetimes(access_ttl=1, refresh_ttl=1, skew=0, rotation_period=1, prepublish=1, jwks_max_age=1)


@dataclass(frozen=True, slots=True)
class Slot:
    record: KeyRecord
    sign_from: float
    sign_until: float  # inf while it has no successor


class Timetable:
    """The key set's schedule, computed once per key-set version."""

    def __init__(self, keys: tuple[KeyRecord, ...], lifetimes: Lifetimes) -> None:
        self.keys = keys
        self.lifetimes = lifetimes
        # Ties (same sign_from) go to the key added to the store later: its
        # predecessor's slot is then empty, so it never signs.
        order = {k.kid: index for index, k in enumerate(keys)}
        self._standby = [k for k in keys if k.standby]
        live = sorted(
            (k for k in keys if not k.standby and (k.revoked_at is None or k.revoked_at > k.sign_from)),
            key=lambda k: (k.sign_from, k.created_at, order[k.kid]),
        )
        slots: dict[str, Slot] = {}
        for index, record in enumerate(live):
            until = live[index + 1].sign_from if index + 1 < len(live) else _INF
            if record.revoked_at is not None:
                until = min(until, record.revoked_at)
            slots[record.kid] = Slot(record, record.sign_from, until)
        self.slots = slots
        self._ordered = live

    # --- per key -----------------------------------------------------------
    def sign_until(self, kid: str) -> float:
        slot = self.slots.get(kid)
        return slot.sign_until if slot else -_INF

    def unpublish_at(self, kid: str) -> float:
        """When the key leaves the JWKS (inf while it has no successor, or is a standby)."""
        if self._is_standby(kid):
            return _INF
        return self.sign_until(kid) + self.lifetimes.access_ttl + self.lifetimes.skew

    def forget_at(self, kid: str) -> float:
        """When no token it signed can be valid any more."""
        if self._is_standby(kid):
            return _INF
        life = max(self.lifetimes.access_ttl, self.lifetimes.refresh_ttl)
        return self.sign_until(kid) + life + self.lifetimes.skew

    def state(self, record: KeyRecord, now: float) -> KeyState:
        if record.revoked_at is not None and record.revoked_at <= now:
            return KeyState.REVOKED
        if record.standby:
            return KeyState.STANDBY
        slot = self.slots.get(record.kid)
        if slot is None:
            return KeyState.PENDING
        if now < slot.sign_from:
            return KeyState.PENDING
        if now < slot.sign_until:
            return KeyState.SIGNING
        if now < self.unpublish_at(record.kid):
            return KeyState.RETIRING
        if now < self.forget_at(record.kid):
            return KeyState.EXPIRED
        return KeyState.PRUNABLE

    # --- the set -------------------------------------------------------------
    def signing(self, now: float) -> KeyRecord | None:
        """The one key that signs at ``now``."""
        for slot in self.slots.values():
            if slot.sign_from <= now < slot.sign_until and not _revoked(slot.record, now):
                return slot.record
        return None

    def published(self, now: float) -> list[KeyRecord]:
        """Keys in the JWKS at ``now``, oldest first, standby last."""
        return [
            k
            for k in (*self._ordered, *self._standby)
            if self.state(k, now) in (KeyState.PENDING, KeyState.SIGNING, KeyState.RETIRING, KeyState.STANDBY)
        ]

    def needs_private(self, record: KeyRecord, now: float) -> bool:
        """Whether ``record``'s private half may still sign: pending, signing or standby."""
        return self.state(record, now) in (KeyState.PENDING, KeyState.SIGNING, KeyState.STANDBY)

    def standby(self, now: float) -> KeyRecord | None:
        """The published standby key (the newest, should a store hold several)."""
        ready = [k for k in self._standby if self.state(k, now) is KeyState.STANDBY]
        return max(ready, key=lambda k: k.created_at) if ready else None

    def accepts_access_tokens(self, kid: str, now: float) -> bool:
        record = self.slots.get(kid)
        return record is not None and (
            self.state(record.record, now) in (KeyState.SIGNING, KeyState.RETIRING)
            or self._signs_within_skew(kid, now)
        )

    def accepts_refresh_tokens(self, kid: str, now: float) -> bool:
        record = self.slots.get(kid)
        return record is not None and (
            self.state(record.record, now) in (KeyState.SIGNING, KeyState.RETIRING, KeyState.EXPIRED)
            or self._signs_within_skew(kid, now)
        )

    def _signs_within_skew(self, kid: str, now: float) -> bool:
        """A pending key whose slot starts within the clock skew: another server, its clock
        ahead by at most ``skew``, already signs with it (the mirror of ``unpublish_at``)."""
        slot = self.slots.get(kid)
        return (
            slot is not None
            and self.state(slot.record, now) is KeyState.PENDING
            and slot.sign_from <= now + self.lifetimes.skew
        )

    def successor(self, kid: str) -> KeyRecord | None:
        ids = [k.kid for k in self._ordered]
        if kid not in ids:
            return None
        index = ids.index(kid)
        return self._ordered[index + 1] if index + 1 < len(ids) else None

    def last(self) -> KeyRecord | None:
        """The key whose slot comes last (a pending successor, else the current key)."""
        for record in reversed(self._ordered):
            if record.revoked_at is None:
                return record
        return None

    def next_change(self, now: float) -> float:
        """The next instant at which the JWKS or the signing key changes."""
        moments = [_INF]
        for kid, slot in self.slots.items():
            # Nothing about a key changes after its revocation (its sign_until is that moment).
            ends = slot.record.revoked_at if slot.record.revoked_at is not None else _INF
            for moment in (slot.sign_from, slot.sign_until, self.unpublish_at(kid)):
                if now < moment <= ends:
                    moments.append(moment)
        return min(moments)

    def next_jwks_change(self, now: float) -> float:
        """The next scheduled change of the key set in the JWKS (a key leaving it).

        Keys join the JWKS only when a rotation run adds them, which no
        timetable can foresee; that is what ``KEY_PREPUBLISH`` covers.
        """
        moments = [self.unpublish_at(k.kid) for k in self.published(now)]
        return min((m for m in moments if m > now), default=_INF)

    def jwks_max_age(self, now: float) -> int:
        """Cache lifetime: min(JWKS_MAX_AGE, max(1, seconds until the set next changes))."""
        until_change = self.next_jwks_change(now) - now
        if until_change == _INF:
            return self.lifetimes.jwks_max_age
        return int(min(self.lifetimes.jwks_max_age, max(1, math.floor(until_change))))

    def rotation_overdue(self, now: float) -> bool:
        current = self.signing(now)
        if current is None:
            return True
        slot = self.slots[current.kid]
        return slot.sign_until == _INF and now >= slot.sign_from + self.lifetimes.rotation_period

    def _is_standby(self, kid: str) -> bool:
        return any(k.kid == kid for k in self._standby)


def _revoked(record: KeyRecord, now: float) -> bool:
    return record.revoked_at is not None and record.revoked_at <= now
