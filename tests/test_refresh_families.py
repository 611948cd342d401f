"""Refresh-token families: rotation, reuse detection, grace, lifetimes, housekeeping.

Everything goes through HTTP on the ASGI app; time moves only by
``harness.clock.advance``. Database rows are read directly where a rule is
about what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from authsvc.store.records import Client
from authsvc.store.sql.tables import refresh_tokens, sessions
from tests.support import AppHarness, assert_error, claims_of

Factory = Callable[..., Any]


async def login(harness: AppHarness, **extra: str) -> dict[str, Any]:
    response = await harness.login(**extra)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def refresh(harness: AppHarness, token: str, **extra: str) -> dict[str, Any]:
    response = await harness.refresh(token, **extra)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def count(harness: AppHarness, table: Any, *where: Any) -> int:
    async with harness.services.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


def audit_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "event", "") for r in caplog.records if r.name == "authsvc.audit"]


# --- families -----------------------------------------------------------------------
async def test_each_login_starts_a_family_and_refreshes_stay_in_it(harness: AppHarness) -> None:
    await harness.add_user()
    first = await login(harness)
    other = await login(harness)
    sid = claims_of(first["refresh_token"])["sid"]
    assert claims_of(other["refresh_token"])["sid"] != sid
    assert claims_of(first["access_token"])["sid"] == sid
    current = first
    for _ in range(3):
        harness.clock.advance(1)
        current = await refresh(harness, current["refresh_token"])
        assert claims_of(current["refresh_token"])["sid"] == sid
        assert claims_of(current["access_token"])["sid"] == sid
    assert await count(harness, sessions) == 2
    assert await count(harness, refresh_tokens, refresh_tokens.c.session_id == sid) == 4
    live = refresh_tokens.c.spent_at.is_(None)
    assert await count(harness, refresh_tokens, refresh_tokens.c.session_id == sid, live) == 1


async def test_replay_after_grace_revokes_the_family(
    db_harness_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await db_harness_factory()
    await harness.add_user()
    first = await login(harness)
    bystander = await login(harness)
    second = await refresh(harness, first["refresh_token"])  # the victim now holds `second`
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    harness.clock.advance(1)
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")  # the thief replays
    assert "refresh.reuse_detected" in audit_events(caplog)
    reuse = next(r for r in caplog.records if getattr(r, "event", "") == "refresh.reuse_detected")
    assert reuse.sid == claims_of(first["refresh_token"])["sid"]  # type: ignore[attr-defined]
    # the successor the victim holds fails too, and so do the family's access tokens
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(second["access_token"])).status_code == 401
    assert (await harness.me(first["access_token"])).status_code == 401
    # another family of the same user is untouched
    assert (await harness.me(bystander["access_token"])).status_code == 200
    await refresh(harness, bystander["refresh_token"])


async def test_reuse_in_the_same_second_is_still_reuse_with_no_grace(harness: AppHarness) -> None:
    await harness.add_user()
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")


async def test_successor_used_first_then_replay_revokes(harness: AppHarness) -> None:
    """The thief refreshes first; the victim's later (legitimate-looking) replay ends it all."""
    await harness.add_user()
    first = await login(harness)
    stolen = await refresh(harness, first["refresh_token"])
    thief = await refresh(harness, stolen["refresh_token"])
    harness.clock.advance(5)
    assert_error(await harness.refresh(stolen["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(thief["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(thief["access_token"])).status_code == 401


# --- grace --------------------------------------------------------------------------
async def test_grace_replay_returns_the_first_body_byte_for_byte(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    harness.clock.advance(1)
    original = await harness.refresh(first["refresh_token"])
    assert original.status_code == 200
    for step in (0, 4, 4.9):
        harness.clock.advance(step)
        again = await harness.refresh(first["refresh_token"])
        assert again.status_code == 200
        assert again.content == original.content
        assert again.headers["cache-control"] == "no-store"
        assert again.headers["pragma"] == "no-cache"
    # nothing was revoked: the successor and its access token still work
    tokens = original.json()
    assert (await harness.me(tokens["access_token"])).status_code == 200
    third = await refresh(harness, tokens["refresh_token"])
    assert (await harness.me(third["access_token"])).status_code == 200


async def test_grace_replay_asking_a_scope_still_gets_the_stored_body(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    original = await harness.refresh(first["refresh_token"])
    again = await harness.refresh(first["refresh_token"], scope="read")
    assert again.status_code == 200
    assert again.content == original.content  # never re-signed


async def test_replay_after_the_grace_window_is_reuse(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    harness.clock.advance(10)  # grace counts from the spend and has now ended
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(second["access_token"])).status_code == 401


async def test_replay_of_an_older_generation_gets_no_grace(
    db_harness_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await db_harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    third = await refresh(harness, second["refresh_token"])  # second's successor is spent now
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    # the newest spent token still has its grace (its successor `third` is unspent) ...
    replay = await harness.refresh(second["refresh_token"])
    assert replay.status_code == 200
    assert replay.json() == third
    # ... but the older one is reuse, inside the window or not
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert "refresh.reuse_detected" in audit_events(caplog)
    assert_error(await harness.refresh(third["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(third["access_token"])).status_code == 401


async def test_grace_replay_of_a_revoked_family_is_refused(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    revoked = await harness.client.post("/revoke", data={"token": second["refresh_token"]})
    assert revoked.status_code == 200
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")


async def test_grace_body_is_never_logged(harness_factory: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    original = await harness.refresh(first["refresh_token"])
    again = await harness.refresh(first["refresh_token"])
    assert again.content == original.content
    secrets = [original.json()["access_token"], original.json()["refresh_token"]]
    secrets += [s.split(".")[2] for s in secrets]  # not even a signature
    records = [r for r in caplog.records if r.name != "aiosqlite"]  # its DEBUG echoes every SQL parameter
    assert any(getattr(r, "event", "") == "refresh.replayed" for r in records)
    for record in records:
        text = record.getMessage() + " " + repr(vars(record))
        for secret in secrets:
            assert secret not in text, record.name


async def test_grace_zero_keeps_no_body(harness: AppHarness) -> None:
    await harness.add_user()
    first = await login(harness)
    await refresh(harness, first["refresh_token"])
    assert await count(harness, refresh_tokens, refresh_tokens.c.grace_body.is_not(None)) == 0


# --- lifetimes ----------------------------------------------------------------------
async def test_refresh_lifetime_slides(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_token_ttl=100, refresh_token_max_ttl=10_000)
    await harness.add_user()
    current = await login(harness)
    start = harness.clock.now()
    for _ in range(5):  # 5 x 90 s: far beyond one refresh lifetime
        harness.clock.advance(90)
        current = await refresh(harness, current["refresh_token"])
        claims = claims_of(current["refresh_token"])
        assert claims["exp"] == int(harness.clock.now()) + 100
    assert harness.clock.now() - start > 100
    harness.clock.advance(100)  # idle for a whole lifetime
    assert_error(await harness.refresh(current["refresh_token"]), 400, "invalid_grant")


async def test_absolute_lifetime_caps_the_family(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(
        refresh_token_ttl=100, refresh_token_max_ttl=250, access_token_ttl=60, clock_skew=0
    )
    await harness.add_user()
    start = int(harness.clock.now())
    current = await login(harness)
    bodies = [current]
    for _ in range(3):  # at +90, +180, +240
        harness.clock.advance(90 if harness.clock.now() - start < 180 else 60)
        current = await refresh(harness, current["refresh_token"])
        bodies.append(current)
    assert int(harness.clock.now()) == start + 240
    last_refresh = claims_of(current["refresh_token"])
    last_access = claims_of(current["access_token"])
    assert last_refresh["exp"] == start + 250
    assert last_access["exp"] == start + 250  # 60 s asked, 10 s left
    assert current["expires_in"] == 10
    for body in bodies:
        for token in (body["access_token"], body["refresh_token"]):
            assert claims_of(token)["exp"] <= start + 250
    harness.clock.advance(10)
    assert_error(await harness.refresh(current["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(current["access_token"])).status_code == 401


async def test_session_end_is_refused_even_for_an_unexpired_row(db_harness_factory: Factory) -> None:
    """The family's absolute limit holds at the database, whatever the token says (on PostgreSQL
    the session is read in the spend's own statement), and the refused spend is rolled back."""
    harness = await db_harness_factory(refresh_token_ttl=100, refresh_token_max_ttl=1000)
    await harness.add_user()
    current = await login(harness)
    sid = claims_of(current["refresh_token"])["sid"]
    async with harness.services.engine.begin() as conn:
        await conn.execute(
            sessions.update().where(sessions.c.id == sid).values(expires_at=harness.clock.now() + 5)
        )
    harness.clock.advance(6)
    assert_error(await harness.refresh(current["refresh_token"]), 400, "invalid_grant")
    assert (await harness.me(current["access_token"])).status_code == 401
    jti = claims_of(current["refresh_token"])["jti"]
    assert (
        await count(harness, refresh_tokens, refresh_tokens.c.jti == jti, refresh_tokens.c.spent_at.is_(None))
        == 1
    )


# --- scope --------------------------------------------------------------------------
async def test_narrower_scope_narrows_only_the_access_token(harness: AppHarness) -> None:
    await harness.add_user()
    first = await login(harness)
    narrowed = await refresh(harness, first["refresh_token"], scope="read")
    assert narrowed["scope"] == "read"
    assert claims_of(narrowed["access_token"])["scope"] == "read"
    assert claims_of(narrowed["refresh_token"])["scope"] == "read write"
    restored = await refresh(harness, narrowed["refresh_token"])
    assert restored["scope"] == "read write"
    assert claims_of(restored["access_token"])["scope"] == "read write"
    # the narrowed family still may not widen past the login
    assert_error(await harness.refresh(restored["refresh_token"], scope="read admin"), 400, "invalid_scope")


@pytest.mark.parametrize("asked", ["admin", "read write admin"])
async def test_wider_scope_is_invalid_scope_and_spends_nothing(harness: AppHarness, asked: str) -> None:
    await harness.add_user()
    first = await login(harness, scope="read")
    assert_error(await harness.refresh(first["refresh_token"], scope=asked), 400, "invalid_scope")
    assert_error(await harness.refresh(first["refresh_token"], scope="write"), 400, "invalid_scope")
    assert (await refresh(harness, first["refresh_token"]))["scope"] == "read"


# --- client binding -----------------------------------------------------------------
async def _add_public_client(harness: AppHarness, client_id: str = "other") -> Client:
    client = Client(
        id=client_id,
        public=True,
        grant_types=frozenset({"password", "refresh_token"}),
        scopes=None,
        audiences=("authsvc",),
    )
    await harness.services.clients.store.add(client, harness.clock.now())
    return client


async def test_refresh_token_of_another_client_is_invalid_grant(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory()
    await harness.add_user()
    await _add_public_client(harness)
    mine = await login(harness)
    theirs = await login(harness, client_id="other")
    assert claims_of(theirs["refresh_token"])["client_id"] == "other"
    assert_error(await harness.refresh(mine["refresh_token"], client_id="other"), 400, "invalid_grant")
    assert_error(await harness.refresh(theirs["refresh_token"]), 400, "invalid_grant")  # as the default
    assert_error(await harness.refresh(theirs["refresh_token"], client_id="cli"), 400, "invalid_grant")
    # a misdirected token is neither spent nor a reason to end the family
    await refresh(harness, mine["refresh_token"])
    await refresh(harness, theirs["refresh_token"], client_id="other")


async def test_spent_token_of_another_client_is_not_a_grace_replay(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    await _add_public_client(harness)
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    assert_error(await harness.refresh(first["refresh_token"], client_id="other"), 400, "invalid_grant")
    assert (await harness.me(second["access_token"])).status_code == 200


# --- housekeeping -------------------------------------------------------------------
async def test_spent_row_is_kept_until_its_exp_so_a_late_replay_is_reuse(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(refresh_token_ttl=100, refresh_token_max_ttl=10_000)
    store = harness.services.session_store
    await harness.add_user()
    first = await login(harness)
    harness.clock.advance(50)
    second = await refresh(harness, first["refresh_token"])
    harness.clock.advance(49)  # first expires at +100; second at +150
    assert (await store.prune(harness.clock.now()))["refresh_tokens"] == 0
    assert await store.token(claims_of(first["refresh_token"])["jti"]) is not None
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    session = await store.get(claims_of(first["refresh_token"])["sid"])
    assert session is not None
    assert session.revoked_reason == "reuse"


async def test_prune_deletes_expired_rows_and_grace_bodies(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(
        refresh_token_ttl=100, refresh_token_max_ttl=300, refresh_reuse_grace=5, access_token_ttl=30
    )
    store = harness.services.session_store
    await harness.add_user()
    t0 = harness.clock.now()
    a1 = await login(harness)  # family A: rows a1 (exp +100)
    harness.clock.advance(10)
    a2 = await refresh(harness, a1["refresh_token"])  # a2 exp +110; a1 spent, grace until +15
    b1 = await login(harness)  # family B: b1 (exp +110)
    revoked = await harness.client.post("/revoke", data={"token": b1["access_token"]})
    assert revoked.status_code == 200
    assert (await count(harness, refresh_tokens), await count(harness, sessions)) == (3, 2)

    counts = await store.prune(t0 + 14)
    assert counts == {"grace_bodies": 0, "refresh_tokens": 0, "sessions": 0, "revoked_access_tokens": 0}
    counts = await store.prune(t0 + 15)  # grace over: the body goes, the row stays
    assert counts["grace_bodies"] == 1
    assert counts["refresh_tokens"] == 0
    assert await count(harness, refresh_tokens, refresh_tokens.c.grace_body.is_not(None)) == 0

    counts = await store.prune(t0 + 100)  # a1 reached its exp; b1's revoked access token too
    assert counts["refresh_tokens"] == 1
    assert counts["sessions"] == 0
    harness.clock.set(t0 + 100)
    assert (await harness.me(a2["access_token"])).status_code == 401  # access tokens are 30 s

    counts = await store.prune(t0 + 110)  # a2 and b1 expired; the sessions live on
    assert counts["refresh_tokens"] == 2
    assert counts["sessions"] == 0
    assert await count(harness, sessions) == 2

    assert (await store.prune(t0 + 300))["sessions"] == 1  # A started at t0
    assert (await store.prune(t0 + 310))["sessions"] == 1  # B at t0 + 10
    assert (await count(harness, refresh_tokens), await count(harness, sessions)) == (0, 0)


async def test_prune_drops_revoked_families_without_tokens(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_token_ttl=100, refresh_token_max_ttl=10_000)
    store = harness.services.session_store
    await harness.add_user()
    body = await login(harness)
    assert (await harness.client.post("/revoke", data={"token": body["refresh_token"]})).status_code == 200
    now = harness.clock.now()
    assert (await store.prune(now))["sessions"] == 0  # its token row still exists
    counts = await store.prune(now + 100)
    assert counts["refresh_tokens"] == 1
    assert counts["sessions"] == 1
    harness.clock.advance(1)
    assert (await harness.me(body["access_token"])).status_code == 401


# --- the user behind the family -----------------------------------------------------
async def test_disabled_user_cannot_refresh_even_if_sessions_were_left_open(
    db_harness_factory: Factory,
) -> None:
    """`users disable` revokes the sessions; a user disabled any other way must not refresh either."""
    harness = await db_harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    second = await refresh(harness, first["refresh_token"])
    await harness.services.users.set_disabled("alice", True, harness.clock.now())
    assert_error(await harness.refresh(second["refresh_token"]), 400, "invalid_grant")
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")  # no grace body either
    assert (await harness.me(second["access_token"])).status_code == 401
    # nothing was spent or revoked on the way: enabling again restores the family
    await harness.services.users.set_disabled("alice", False, harness.clock.now())
    assert (await harness.refresh(second["refresh_token"])).status_code == 200


async def test_grace_replay_after_the_family_limit_is_refused(harness_factory: Factory) -> None:
    harness = await harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = await login(harness)
    await refresh(harness, first["refresh_token"])
    sid = claims_of(first["refresh_token"])["sid"]
    async with harness.services.engine.begin() as conn:
        await conn.execute(
            sessions.update().where(sessions.c.id == sid).values(expires_at=harness.clock.now() + 2)
        )
    harness.clock.advance(3)
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")


async def test_only_the_newest_spent_token_keeps_a_grace_body(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(refresh_reuse_grace=10)
    await harness.add_user()
    first = current = await login(harness)
    stored = refresh_tokens.c.grace_body.is_not(None)
    for _ in range(3):
        current = await refresh(harness, current["refresh_token"])
        assert await count(harness, refresh_tokens, stored) == 1  # older bodies can never be served
    # a reuse ends the family and drops its stored body at once, long before any prune
    assert_error(await harness.refresh(first["refresh_token"]), 400, "invalid_grant")
    assert await count(harness, refresh_tokens, stored) == 0


async def test_live_sessions_are_the_refreshable_ones(db_harness_factory: Factory) -> None:
    harness = await db_harness_factory(refresh_token_ttl=100, refresh_token_max_ttl=1000)
    store = harness.services.session_store
    user = await harness.add_user()
    idle = await login(harness)
    harness.clock.advance(60)
    active = await login(harness)
    revoked = await login(harness)
    assert (await harness.client.post("/revoke", data={"token": revoked["refresh_token"]})).status_code == 200
    listed = [s.id for s in await store.live_for_user(user.id, harness.clock.now())]
    assert listed == [claims_of(idle["refresh_token"])["sid"], claims_of(active["refresh_token"])["sid"]]
    harness.clock.advance(50)  # idle's only token expired at +100
    listed = [s.id for s in await store.live_for_user(user.id, harness.clock.now())]
    assert listed == [claims_of(active["refresh_token"])["sid"]]
