"""The key timetable and the rotation plan, with explicit instants.

Pure tests of ``Timetable`` and ``plan_rotation`` at and around every
transition, then a hypothesis state machine that runs the real rotation code
(``rotate``, ``revoke_key``) on a ``FileKeyStore`` in a temporary directory
with a ``FrozenClock`` and checks the promises of CONTRACT.md (Keys) at every
instant where anything can change.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from authsvc.clock import FrozenClock
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.plan import PROPAGATION, plan_rotation
from authsvc.keys.rotation import create_first_key, revoke_key, rotate
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable

T = 1_800_000_000.0
EPS = 0.001
SERVED_WITHIN = 1.0  # CONTRACT.md: servers see a key-store change within a second
L = Lifetimes(access_ttl=30, refresh_ttl=100, skew=5, rotation_period=1000, prepublish=50, jwks_max_age=20)
LEAD = L.prepublish + PROPAGATION


def key(
    kid: str, sign_from: float, *, created: float | None = None, alg: str = "EdDSA", **extra: float
) -> KeyRecord:
    created_at = sign_from - L.prepublish if created is None else created
    return KeyRecord(kid, alg, {"kid": kid}, created_at=created_at, sign_from=sign_from, **extra)


def states(table: Timetable, now: float) -> dict[str, KeyState]:
    return {k.kid: table.state(k, now) for k in table.keys}


def published(table: Timetable, now: float) -> list[str]:
    return [k.kid for k in table.published(now)]


# --- the timetable ------------------------------------------------------------------------
def test_first_key_signs_from_its_creation_without_end() -> None:
    table = Timetable((key("a", T, created=T),), L)
    assert table.state(table.keys[0], T) is KeyState.SIGNING
    assert table.state(table.keys[0], T - EPS) is KeyState.PENDING
    assert table.signing(T).kid == "a"  # type: ignore[union-attr]
    assert table.sign_until("a") == table.unpublish_at("a") == table.forget_at("a") == float("inf")
    assert table.next_jwks_change(T) == float("inf")
    assert table.jwks_max_age(T) == L.jwks_max_age
    assert published(table, T) == ["a"]


def test_every_transition_happens_exactly_at_its_instant() -> None:
    a, b = key("a", T, created=T), key("b", T + 1000)
    table = Timetable((a, b), L)
    # b is published from its creation, signs from sign_from
    assert states(table, b.created_at) == {"a": KeyState.SIGNING, "b": KeyState.PENDING}
    assert published(table, b.created_at) == ["a", "b"]
    assert table.signing(T + 1000 - EPS) == a
    # sign_until(a) == sign_from(b): the hand-over is one instant, no gap, no overlap
    assert table.sign_until("a") == T + 1000
    assert states(table, T + 1000) == {"a": KeyState.RETIRING, "b": KeyState.SIGNING}
    assert table.signing(T + 1000) == b
    # a stays published until sign_until + access TTL + skew
    unpublish = T + 1000 + L.access_ttl + L.skew
    assert table.unpublish_at("a") == unpublish
    assert table.state(a, unpublish - EPS) is KeyState.RETIRING
    assert published(table, unpublish - EPS) == ["a", "b"]
    assert table.accepts_access_tokens("a", unpublish - EPS)
    assert table.state(a, unpublish) is KeyState.EXPIRED
    assert published(table, unpublish) == ["b"]
    assert not table.accepts_access_tokens("a", unpublish)
    # its public half answers for refresh tokens until sign_until + refresh TTL + skew
    forget = T + 1000 + L.refresh_ttl + L.skew
    assert table.forget_at("a") == forget
    assert table.accepts_refresh_tokens("a", forget - EPS)
    assert table.state(a, forget) is KeyState.PRUNABLE
    assert not table.accepts_refresh_tokens("a", forget)
    # a pending key accepts nothing: it has signed nothing yet
    # b is accepted from its first signing minus the skew (see the test below), not before
    assert not table.accepts_access_tokens("b", T + 1000 - L.skew - EPS)
    assert not table.accepts_refresh_tokens("b", T + 1000 - L.skew - EPS)


@pytest.mark.parametrize("skew", [0, 1, 60])
def test_clock_skew_extends_publication_and_refresh_acceptance(skew: int) -> None:
    lifetimes = Lifetimes(30, 100, skew, 1000, 50, 20)
    table = Timetable((key("a", T, created=T), key("b", T + 1000)), lifetimes)
    assert table.unpublish_at("a") == T + 1000 + 30 + skew
    assert table.forget_at("a") == T + 1000 + 100 + skew
    assert table.state(table.keys[0], T + 1030 + skew - EPS) is KeyState.RETIRING
    assert table.state(table.keys[0], T + 1030 + skew) is KeyState.EXPIRED


@pytest.mark.parametrize("skew", [0, 2, 60])
def test_a_server_whose_clock_is_behind_accepts_the_tokens_of_one_ahead(skew: int) -> None:
    """Found by scripts/soak.py: with one instance's clock 2 s ahead (within
    AUTHSVC_CLOCK_SKEW), that instance signs with the next key 2 s before the other
    believes it signs; the other refused those tokens (401 at /users/me, invalid_grant
    for refresh tokens) although every JWKS cache already held the key. A pending key is
    accepted from its first signing minus the skew, as a retiring one stays the skew longer.
    """
    lifetimes = Lifetimes(30, 100, skew, 1000, 50, 20)
    table = Timetable((key("a", T, created=T), key("b", T + 1000)), lifetimes)
    assert table.accepts_access_tokens("b", T + 1000 - skew)
    assert table.accepts_refresh_tokens("b", T + 1000 - skew)
    if skew:
        assert table.signing(T + 1000 - skew) == table.keys[0]  # it still signs with a itself
        assert not table.accepts_access_tokens("b", T + 1000 - skew - EPS)
        assert not table.accepts_refresh_tokens("b", T + 1000 - skew - EPS)
    revoked = Timetable((key("a", T, created=T), key("b", T + 1000, revoked_at=T + 900)), lifetimes)
    assert not revoked.accepts_access_tokens("b", T + 1000 - skew)
    assert not revoked.accepts_refresh_tokens("b", T + 1000 - skew)


def test_refresh_ttl_shorter_than_access_ttl_keeps_the_key_for_access_tokens() -> None:
    lifetimes = Lifetimes(
        access_ttl=100, refresh_ttl=10, skew=0, rotation_period=1000, prepublish=50, jwks_max_age=20
    )
    table = Timetable((key("a", T, created=T), key("b", T + 1000)), lifetimes)
    assert table.forget_at("a") == table.unpublish_at("a") == T + 1100


def test_revoked_pending_key_does_not_cut_the_current_slot() -> None:
    a = key("a", T, created=T)
    b = key("b", T + 1000, revoked_at=T + 960, private_deleted_at=T + 960)
    table = Timetable((a, b), L)
    assert table.sign_until("a") == float("inf")
    assert table.signing(T + 1000) == a
    assert table.signing(T + 5000) == a
    assert table.state(b, T + 960) is KeyState.REVOKED
    assert published(table, T + 960) == ["a"]
    assert not table.accepts_access_tokens("b", T + 2000)
    assert table.rotation_overdue(T + 1000)
    assert table.last() == a


def test_revoked_signing_key_hands_over_to_its_successor_at_the_revocation() -> None:
    a = key("a", T, created=T, revoked_at=T + 500, private_deleted_at=T + 500)
    b = key("b", T + 500, created=T + 480)  # revoke_key moved its sign_from to the revocation
    table = Timetable((a, b), L)
    assert table.signing(T + 500 - EPS) == a
    assert table.signing(T + 500) == b
    assert table.state(a, T + 500) is KeyState.REVOKED
    assert published(table, T + 500) == ["b"]
    assert not table.accepts_access_tokens("a", T + 500)
    assert not table.accepts_refresh_tokens("a", T + 500)
    assert table.sign_until("a") == T + 500


def test_equal_sign_from_goes_to_the_key_added_later() -> None:
    a = key("a", T, created=T)
    p = key("p", T + 100, created=T + 10, alg="RS256")
    n = key("n", T + 100, created=T + 10)
    table = Timetable((a, p, n), L)
    assert table.signing(T + 100) == n
    assert table.sign_until("p") == T + 100  # an empty slot: p never signs
    assert table.state(p, T + 100) is KeyState.RETIRING
    assert table.last() == n


def test_jwks_max_age_counts_down_to_the_next_change_of_the_key_set() -> None:
    table = Timetable((key("a", T, created=T), key("b", T + 1000)), L)
    unpublish = table.unpublish_at("a")
    assert table.jwks_max_age(T + 500) == L.jwks_max_age
    assert table.jwks_max_age(unpublish - 100) == L.jwks_max_age
    assert table.jwks_max_age(unpublish - 20) == 20
    assert table.jwks_max_age(unpublish - 7.5) == 7
    assert table.jwks_max_age(unpublish - 1.5) == 1
    assert table.jwks_max_age(unpublish - 0.5) == 1  # never 0
    assert table.jwks_max_age(unpublish) == L.jwks_max_age  # changed; nothing else scheduled


def test_a_revoked_key_schedules_no_change_after_its_revocation() -> None:
    """Its would-be unpublication is no change: the key left the JWKS when it was revoked."""
    table = Timetable((key("a", T, created=T), key("b", T + 1000, revoked_at=T + 1100)), L)
    assert table.next_change(T + 1050) == T + 1100  # the revocation itself
    assert table.unpublish_at("b") > T + 1100  # what was counted before: b leaving the JWKS again
    assert table.next_change(T + 1100) == float("inf")


def test_a_key_starting_to_sign_is_not_a_change_of_the_key_set() -> None:
    table = Timetable((key("a", T, created=T), key("b", T + 1000)), L)
    assert table.jwks_max_age(T + 1000 - 3) == L.jwks_max_age
    assert table.next_jwks_change(T + 999) == table.unpublish_at("a")


def test_rotation_overdue_only_without_a_successor_after_the_period() -> None:
    a = key("a", T, created=T)
    alone = Timetable((a,), L)
    assert not alone.rotation_overdue(T + 1000 - EPS)
    assert alone.rotation_overdue(T + 1000)
    assert alone.signing(T + 10_000) == a  # keeps signing
    with_successor = Timetable((a, key("b", T + 1200, created=T + 1100)), L)
    assert not with_successor.rotation_overdue(T + 1150)
    assert not with_successor.rotation_overdue(T + 1200)


# --- the plan -------------------------------------------------------------------------------
def plan(keys: tuple[KeyRecord, ...], now: float, *, alg: str = "EdDSA", force: bool = False):  # type: ignore[no-untyped-def]
    return plan_rotation(KeySetDoc(keys=keys), L, now, alg, force=force)


def test_nothing_to_do_inside_the_period() -> None:
    first = key("a", T, created=T)
    assert plan((first,), T).empty
    assert plan((first,), T + 1000 - LEAD - EPS).empty


def test_successor_is_created_early_enough_to_sign_at_the_end_of_the_period() -> None:
    result = plan((key("a", T, created=T),), T + 1000 - LEAD)
    assert result.new_alg == "EdDSA"
    assert result.new_sign_from == T + 1000
    assert [c.action for c in result.changes] == ["create"]


def test_a_late_run_still_prepublishes_and_the_old_key_signs_until_then() -> None:
    now = T + 1500
    result = plan((key("a", T, created=T),), now)
    assert result.new_sign_from == now + LEAD


def test_force_publishes_now_unless_a_successor_is_pending() -> None:
    first = key("a", T, created=T)
    assert plan((first,), T + 10, force=True).new_sign_from == T + 10 + LEAD
    pending = key("b", T + 60 + LEAD, created=T + 60)
    assert plan((first, pending), T + 70, force=True).empty


def test_alg_change_publishes_a_key_of_the_new_alg_at_once() -> None:
    first = key("a", T, created=T, alg="RS256")
    result = plan((first,), T + 10, alg="EdDSA")
    assert (result.new_alg, result.new_sign_from) == ("EdDSA", T + 10 + LEAD)
    assert "algorithm changes from RS256" in result.changes[0].detail


def test_alg_change_with_a_pending_successor_of_the_old_alg() -> None:
    first = key("a", T, created=T, alg="RS256")
    pending = key("b", T + 1000, created=T + 1000 - LEAD, alg="RS256")
    now = T + 960
    result = plan((first, pending), now, alg="EdDSA")
    assert (result.new_alg, result.new_sign_from) == ("EdDSA", now + LEAD)
    new = key("c", now + LEAD, created=now)
    table = Timetable((first, pending, new), L)
    assert table.signing(T + 1000 - EPS) == first
    assert table.signing(T + 1000) == pending  # signs until the new key takes over
    assert table.signing(now + LEAD) == new
    # a pending key of the new alg: nothing more to do
    assert plan((first, pending, new), now + 1, alg="EdDSA").empty


def test_alg_change_never_puts_the_new_key_before_a_pending_one() -> None:
    first = key("a", T, created=T, alg="RS256")
    pending = key("b", T + 1000, created=T + 900, alg="RS256")  # signs later than now + LEAD
    result = plan((first, pending), T + 920, alg="EdDSA")
    assert result.new_sign_from == T + 1000
    new = key("c", T + 1000, created=T + 920)
    table = Timetable((first, pending, new), L)
    assert table.signing(T + 1000) == new  # the tie goes to the newer key: b never signs


def test_alg_change_back_while_a_successor_of_the_other_alg_is_pending() -> None:
    first = key("a", T, created=T, alg="RS256")
    pending = key("b", T + 1000, created=T + 900, alg="EdDSA")
    assert plan((first, pending), T + 920, alg="RS256").new_alg == "RS256"


def test_private_key_is_destroyed_once_it_stops_signing() -> None:
    keys = (key("a", T, created=T), key("b", T + 1000))
    assert plan(keys, T + 1000 - EPS).delete_private == []
    result = plan(keys, T + 1000)
    assert result.delete_private == ["a"]
    assert [str(c) for c in result.changes] == ["destroy-private a stopped signing (retiring)"]
    done = (keys[0].with_changes(private_deleted_at=T + 1000), keys[1])
    assert plan(done, T + 1001).empty


def test_prune_exactly_when_nothing_it_signed_can_be_valid() -> None:
    keys = (key("a", T, created=T, private_deleted_at=T + 1000), key("b", T + 1000))
    forget = T + 1000 + L.refresh_ttl + L.skew
    assert plan(keys, forget - EPS).prune == []
    assert plan(keys, forget).prune == ["a"]


def test_revoked_key_is_pruned_after_its_tokens_could_have_expired() -> None:
    life = max(L.access_ttl, L.refresh_ttl) + L.skew
    revoked = key("a", T, created=T, revoked_at=T + 10, private_deleted_at=T + 10)
    keys = (revoked, key("b", T + 10, created=T + 10))
    assert plan(keys, T + 10 + life - EPS).prune == []
    assert plan(keys, T + 10 + life).prune == ["a"]


def test_no_key_can_sign_makes_one_that_signs_now() -> None:
    future = key("a", T + 100, created=T + 100)  # e.g. a clock that went back
    result = plan((future,), T)
    assert (result.new_alg, result.new_sign_from) == ("EdDSA", T)


# --- the real rotation code under a state machine -------------------------------------------
ALGS = ("EdDSA", "ES256")  # fast to generate; RS256 ↔ EdDSA runs end to end elsewhere


@st.composite
def lifetimes_strategy(draw: st.DrawFn) -> Lifetimes:
    jwks_max_age = draw(st.integers(1, 4))
    return Lifetimes(
        access_ttl=draw(st.integers(1, 8)),
        refresh_ttl=draw(st.integers(1, 20)),
        skew=draw(st.integers(0, 3)),
        rotation_period=draw(st.integers(1, 15)),
        prepublish=draw(st.integers(jwks_max_age, 6)),
        jwks_max_age=jwks_max_age,
    )


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.iterdir())
        if p.name != ".lock"
    }


class RotationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.store = FileKeyStore(Path(self._tmp.name) / "keys")
        self.clock = FrozenClock(T)
        self.alg = ALGS[0]
        self.exempt: set[str] = set()  # may sign without prepublication: first key, emergency replacements
        self.last_signed: dict[str, float] = {}  # kid -> supremum of the instants it signed
        self.revoked: set[str] = set()

    def teardown(self) -> None:
        self._tmp.cleanup()

    # --- helpers -------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    def table(self) -> Timetable:
        return Timetable(self.store.read().keys, self.lifetimes)

    def files(self) -> set[str]:
        return self.store.private_kids()

    def check_instant(self, table: Timetable, t: float, files: set[str]) -> None:
        """Everything the contract promises at instant ``t`` for a store that does not change."""
        signing = table.signing(t)
        assert signing is not None, "no key signs"
        assert [k.kid for k in table.keys if table.state(k, t) is KeyState.SIGNING] == [signing.kid]
        assert signing.kid in files, "the signing key's private half is missing"
        assert signing.kid not in self.revoked
        if signing.kid not in self.exempt:
            assert signing.sign_from - signing.created_at >= self.lifetimes.prepublish
            assert t - signing.created_at >= self.lifetimes.prepublish
        published = {k.kid for k in table.published(t)}
        spare = table.standby(t)
        if spare is not None:  # published, never signing, never leaving the JWKS on a schedule
            assert spare.kid in published and spare.kid in files and spare.kid not in table.slots
            assert table.unpublish_at(spare.kid) == float("inf")
        lt = self.lifetimes
        for kid, until in self.last_signed.items():
            if kid not in self.revoked and t < until + lt.access_ttl + lt.skew:
                assert kid in published, f"{kid} left the JWKS while a token it signed may be valid"
                assert table.accepts_access_tokens(kid, t)
            if kid not in self.revoked and t < until + lt.refresh_ttl + lt.skew:
                assert table.accepts_refresh_tokens(kid, t)
        assert not published & self.revoked
        last = table.last()
        overdue = last == signing and t >= signing.sign_from + lt.rotation_period
        assert table.rotation_overdue(t) == overdue
        change = table.next_jwks_change(t)
        assert 1 <= table.jwks_max_age(t) <= lt.jwks_max_age
        if change != float("inf"):
            assert table.jwks_max_age(t) <= max(1, change - t)

    def observe(self, start: float, end: float) -> None:
        """The store is constant on [start, end]: record who signed, check every transition."""
        table = self.table()
        files = self.files()
        moments = {start, end}
        for slot in table.slots.values():
            kid = slot.record.kid
            for m in (slot.sign_from, slot.sign_until, table.unpublish_at(kid), table.forget_at(kid)):
                for t in (m - EPS, m):
                    if start <= t <= end:
                        moments.add(t)
        for until in self.last_signed.values():
            m = until + self.lifetimes.access_ttl + self.lifetimes.skew
            moments.update(t for t in (m - EPS, m) if start <= t <= end)
        ordered = sorted(moments)
        for t, following in zip(ordered, [*ordered[1:], end], strict=True):
            self.check_instant(table, t, files)
            signing = table.signing(t)
            assert signing is not None
            # the signing key is constant on [t, following): transitions are among the moments
            self.last_signed[signing.kid] = max(self.last_signed.get(signing.kid, t), following)

    def after_run(self) -> None:
        """After a rotation run: private files exist exactly for keys that may still sign."""
        table = self.table()
        may_sign = {
            k.kid
            for k in table.keys
            if table.state(k, self.now) in (KeyState.PENDING, KeyState.SIGNING, KeyState.STANDBY)
        }
        assert self.files() == may_sign
        standbys = [k for k in table.keys if table.state(k, self.now) is KeyState.STANDBY]
        assert len(standbys) == (1 if self.standby else 0)
        assert not list(self.store.directory.glob(".*.tmp"))
        self.observe(self.now, self.now)

    # --- rules ---------------------------------------------------------------------
    @initialize(lifetimes=lifetimes_strategy(), standby=st.booleans())
    def first_key(self, lifetimes: Lifetimes, standby: bool) -> None:
        self.lifetimes = lifetimes
        self.standby = standby
        change = create_first_key(self.store, self.alg, self.clock, None, standby=standby)
        assert change is not None
        self.exempt.add(change.kid)
        assert create_first_key(self.store, self.alg, self.clock, None, standby=standby) is None
        self.after_run()

    @rule(dt=st.one_of(st.integers(0, 20).map(float), st.floats(0, 20, allow_nan=False)))
    def advance(self, dt: float) -> None:
        start = self.now
        self.clock.advance(dt)
        self.observe(start, self.now)

    @rule()
    def advance_to_next_transition(self) -> None:
        table = self.table()
        lt = self.lifetimes
        start = self.now
        moments = [table.next_change(start), table.forget_at(table.keys[0].kid)]
        signing = table.signing(start)
        assert signing is not None
        due = signing.sign_from + lt.rotation_period
        moments += [due, due - lt.prepublish - PROPAGATION]
        future = [m for m in moments if start < m < float("inf")]
        if future:
            self.clock.set(min(future))
            self.observe(start, self.now)

    @rule(force=st.booleans())
    def rotate(self, force: bool) -> None:
        before = self.table()
        spare = before.standby(self.now)
        changes = rotate(
            self.store, self.lifetimes, self.clock, self.alg, None, force=force, standby=self.standby
        )
        after = self.store.read()
        successors = [c for c in changes if c.action in ("created", "promote")]
        successors = [c for c in successors if not after.find(c.kid).standby]  # type: ignore[union-attr]
        assert len(successors) <= 1
        for change in successors:
            record = after.find(change.kid)
            assert record is not None
            assert record.alg == self.alg
            # servers serve it within a second; it must then sit in the JWKS for KEY_PREPUBLISH
            assert record.sign_from >= self.now + self.lifetimes.prepublish + SERVED_WITHIN
            if change.action == "promote":  # the standby every cache already holds
                assert spare is not None and change.kid == spare.kid and spare.alg == self.alg
        if spare is not None and spare.alg == self.alg and successors:
            assert successors[0].kid == spare.kid, "a rotation promotes the standby before making a key"
        if force and before.last() == before.signing(self.now):
            assert successors, "--force without a pending successor must publish one"
        if self.standby:
            standby = Timetable(after.keys, self.lifetimes).standby(self.now)
            assert standby is not None and standby.alg == self.alg
        self.after_run()
        files = snapshot(self.store.directory)
        again = rotate(
            self.store, self.lifetimes, self.clock, self.alg, None, force=force, standby=self.standby
        )
        assert again == []
        assert snapshot(self.store.directory) == files

    @rule(force=st.booleans())
    def dry_run(self, force: bool) -> None:
        files = snapshot(self.store.directory)
        planned = rotate(
            self.store,
            self.lifetimes,
            self.clock,
            self.alg,
            None,
            force=force,
            dry_run=True,
            standby=self.standby,
        )
        assert snapshot(self.store.directory) == files
        applied = rotate(
            self.store, self.lifetimes, self.clock, self.alg, None, force=force, standby=self.standby
        )
        assert [(c.action, c.detail) for c in planned if c.action != "create"] == [
            (c.action, c.detail) for c in applied if c.action != "created"
        ]
        assert len([c for c in planned if c.action == "create"]) == len(
            [c for c in applied if c.action == "created"]
        )
        self.after_run()

    @rule()
    def change_alg(self) -> None:
        self.alg = ALGS[1] if self.alg == ALGS[0] else ALGS[0]

    @precondition(lambda self: len(self.revoked) < 4)
    @rule(which=st.sampled_from(["signing", "pending", "published", "any", "standby"]))
    def revoke(self, which: str) -> None:
        table = self.table()
        now = self.now
        signing = table.signing(now)
        assert signing is not None
        candidates = {
            "standby": [k for k in table.keys if table.state(k, now) is KeyState.STANDBY],
            "signing": [signing],
            "pending": [k for k in table.keys if table.state(k, now) is KeyState.PENDING],
            "published": table.published(now),
            "any": [k for k in table.keys if k.revoked_at is None],
        }[which]
        if not candidates:
            return
        victim = candidates[-1]
        successor = table.successor(victim.kid)
        spare = table.standby(now)
        changes = revoke_key(self.store, victim.kid, self.clock, self.alg, None, standby=self.standby)
        self.revoked.add(victim.kid)
        after = self.table()
        assert victim.kid not in {k.kid for k in after.published(now)}
        assert victim.kid not in self.files()
        assert not after.accepts_access_tokens(victim.kid, now)
        assert not after.accepts_refresh_tokens(victim.kid, now)
        new_signer = after.signing(now)
        assert new_signer is not None
        if victim.kid == signing.kid:
            # the emergency: a pending successor signs at once, else the standby, else a new key
            if successor is not None:
                assert new_signer.kid == successor.kid
            elif spare is not None:
                assert new_signer.kid == spare.kid, "the standby every cache holds signs at once"
                assert [c.action for c in changes][:2] == ["revoked", "signing"]
            else:
                assert [c.action for c in changes][:2] == ["revoked", "created"]
            self.exempt.add(new_signer.kid)
        else:
            assert new_signer.kid == signing.kid
        if self.standby:
            assert after.standby(now) is not None, "a revocation leaves a standby published"
        assert revoke_key(self.store, victim.kid, self.clock, self.alg, None, standby=self.standby) == []
        self.observe(now, now)

    @invariant()
    def store_loads(self) -> None:
        if hasattr(self, "lifetimes"):
            assert self.table().signing(self.now) is not None


RotationMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
TestRotationMachine = RotationMachine.TestCase
