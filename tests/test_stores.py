"""One store suite, run over every engine (SQLite file and PostgreSQL) — Hydra's pattern."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.migrations import upgrade
from authsvc.store.records import Client, SessionRecord
from authsvc.store.sql.clients import DuplicateClient, SqlClientStore
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.sessions import NewRefreshToken, RotateOutcome, SqlSessionStore
from authsvc.store.sql.users import DuplicateUser, SqlUserStore

NOW = 1_800_000_000.0


@dataclass
class Stores:
    engine: AsyncEngine
    users: SqlUserStore
    sessions: SqlSessionStore
    clients: SqlClientStore


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = SqlSessionStore.open(database_url, engine)
    try:
        yield Stores(engine, SqlUserStore(engine), sessions, SqlClientStore(engine))
    finally:
        sessions.close()
        await engine.dispose()


def _token(jti: str, body: str = "", expires: float = NOW + 100) -> NewRefreshToken:
    return NewRefreshToken(
        jti=jti, kid="k" * 43, issued_at=NOW, expires_at=expires, body=body or f"body-{jti}"
    )


async def _session(stores: Stores, sid: str = "s1", first: str = "t0") -> SessionRecord:
    user = await stores.users.by_username("alice") or await stores.users.add(
        "alice", "h", NOW, username_key="alice"
    )
    session = SessionRecord(sid, user.id, "cli", "read", NOW, NOW + 1000, None, None)
    created = await stores.sessions.create(
        session,
        lambda _s: _token(first),
        credentials_version=user.credentials_version,
        registered_client=False,
    )
    assert created is not None
    return session


async def test_users(stores: Stores) -> None:
    user = await stores.users.add(
        "alice", "hash1", NOW, username_key="alice", scopes=frozenset({"a", "b"}), email="a@x"
    )
    assert (await stores.users.by_id(user.id)) == user
    assert (await stores.users.by_username("alice")) == user
    with pytest.raises(DuplicateUser):
        await stores.users.add("alice", "hash2", NOW, username_key="alice")
    await stores.users.replace_hash(user.id, "other", "hash3", NOW)  # stale: no change
    assert (await stores.users.by_id(user.id)).password_hash == "hash1"  # type: ignore[union-attr]
    await stores.users.replace_hash(user.id, "hash1", "hash3", NOW)
    assert (await stores.users.by_id(user.id)).password_hash == "hash3"  # type: ignore[union-attr]
    disabled = await stores.users.set_disabled("alice", True, NOW)
    assert disabled is not None and disabled.disabled
    assert [u.username for u in await stores.users.list()] == ["alice"]


async def test_rotation_is_a_compare_and_set(stores: Stores) -> None:
    await _session(stores)
    counter = iter(range(1000))

    def successor(_s: SessionRecord) -> NewRefreshToken:
        return _token(f"n{next(counter)}")

    results = await asyncio.gather(
        *[stores.sessions.rotate("t0", "cli", NOW + 1, 0, successor) for _ in range(20)]
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(RotateOutcome.ROTATED) == 1, outcomes
    assert set(outcomes) <= {RotateOutcome.ROTATED, RotateOutcome.REUSED, RotateOutcome.INVALID}
    session = await stores.sessions.get("s1")
    assert session is not None and session.revoked_reason == "reuse"


async def test_grace_replays_the_first_body_and_only_for_the_latest_generation(stores: Stores) -> None:
    await _session(stores)
    first = await stores.sessions.rotate("t0", "cli", NOW + 1, 10, lambda _s: _token("t1", "FIRST"))
    assert (first.outcome, first.body) == (RotateOutcome.ROTATED, "FIRST")
    replay = await stores.sessions.rotate("t0", "cli", NOW + 5, 10, lambda _s: _token("x"))
    assert (replay.outcome, replay.body) == (RotateOutcome.REPLAYED, "FIRST")
    # the successor is spent: the older generation gets no grace
    assert (await stores.sessions.rotate("t1", "cli", NOW + 6, 10, lambda _s: _token("t2"))).outcome is (
        RotateOutcome.ROTATED
    )
    late = await stores.sessions.rotate("t0", "cli", NOW + 7, 10, lambda _s: _token("y"))
    assert late.outcome is RotateOutcome.REUSED
    after = await stores.sessions.rotate("t2", "cli", NOW + 8, 10, lambda _s: _token("t3"))
    assert after.outcome is RotateOutcome.INVALID


async def test_grace_ends(stores: Stores) -> None:
    await _session(stores)
    await stores.sessions.rotate("t0", "cli", NOW + 1, 10, lambda _s: _token("t1", "FIRST"))
    assert (await stores.sessions.rotate("t0", "cli", NOW + 11, 10, lambda _s: _token("x"))).outcome is (
        RotateOutcome.REUSED
    )


async def test_other_client_unknown_and_expired_tokens_are_invalid(stores: Stores) -> None:
    await _session(stores)
    assert (await stores.sessions.rotate("t0", "other", NOW, 0, lambda _s: _token("x"))).outcome is (
        RotateOutcome.INVALID
    )
    assert (await stores.sessions.rotate("nope", "cli", NOW, 0, lambda _s: _token("x"))).outcome is (
        RotateOutcome.INVALID
    )
    assert (await stores.sessions.rotate("t0", "cli", NOW + 101, 0, lambda _s: _token("x"))).outcome is (
        RotateOutcome.INVALID
    )
    session = await stores.sessions.get("s1")
    assert session is not None and session.revoked_at is None  # none of those is reuse


async def test_revocation_and_access_checks(stores: Stores) -> None:
    session = await _session(stores)
    assert await stores.sessions.access_allowed("s1", "a1", NOW)
    await stores.sessions.revoke_access_token("a1", NOW + 50)
    await stores.sessions.revoke_access_token("a1", NOW + 50)  # twice is fine
    assert not await stores.sessions.access_allowed("s1", "a1", NOW)
    assert await stores.sessions.access_allowed(None, "a2", NOW)
    assert [s.id for s in await stores.sessions.live_for_user(session.user_id, NOW)] == ["s1"]
    assert await stores.sessions.revoke_user(session.user_id, NOW, "logout") == 1
    assert not await stores.sessions.access_allowed("s1", "a2", NOW)
    assert await stores.sessions.live_for_user(session.user_id, NOW) == []
    assert (await stores.sessions.rotate("t0", "cli", NOW, 0, lambda _s: _token("x"))).outcome is (
        RotateOutcome.INVALID
    )


async def test_prune(stores: Stores) -> None:
    await _session(stores)
    await stores.sessions.rotate("t0", "cli", NOW + 1, 10, lambda _s: _token("t1", "B", NOW + 200))
    await stores.sessions.revoke_access_token("a1", NOW + 50)
    counts = await stores.sessions.prune(NOW + 20)
    assert counts["grace_bodies"] == 1
    assert counts["refresh_tokens"] == 0
    counts = await stores.sessions.prune(NOW + 150)
    assert counts["refresh_tokens"] == 1  # t0, expired at NOW + 100
    assert counts["revoked_access_tokens"] == 1
    assert await stores.sessions.token("t1") is not None
    counts = await stores.sessions.prune(NOW + 5000)
    assert counts["sessions"] == 1
    assert await stores.sessions.get("s1") is None


async def test_clients_and_assertion_replay(stores: Stores) -> None:
    client = Client(
        "svc", False, frozenset({"client_credentials"}), frozenset({"a"}), ("api",), 60, "sha256$x$y"
    )
    await stores.clients.add(client, NOW)
    with pytest.raises(DuplicateClient):
        await stores.clients.add(client, NOW)
    assert await stores.clients.get("svc") == client
    assert await stores.clients.use_assertion("svc", "j1", NOW + 60, NOW)
    assert not await stores.clients.use_assertion("svc", "j1", NOW + 60, NOW)
    assert await stores.clients.use_assertion("other", "j1", NOW + 60, NOW)
    assert await stores.clients.prune_assertions(NOW + 61) == 2
    assert await stores.clients.remove("svc", NOW) == 0  # removed, no sessions to revoke
    assert await stores.clients.remove("svc", NOW) is None
    assert await stores.clients.get("svc") is None
    with pytest.raises(DuplicateClient) as taken:  # a removed id is never revived
        await stores.clients.add(client, NOW)
    assert taken.value.removed
