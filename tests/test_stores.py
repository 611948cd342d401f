"""One store suite, run over every implementation (memory, SQLite file, PostgreSQL) — Hydra's pattern.

The refresh-family decisions (``authsvc.tokens.families``) run here on each store's transactions,
so the policy and the statements it relies on are proven together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from authsvc.migrations import upgrade
from authsvc.store.memory import MemoryClientStore, MemoryDatabase, MemorySessionStore, MemoryUserStore
from authsvc.store.protocols import ClientStore, SessionStore, UserStore
from authsvc.store.records import Client, IssuedRefreshToken, SessionRecord
from authsvc.store.sql.clients import DuplicateClient, SqlClientStore
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.sessions import SqlSessionStore
from authsvc.store.sql.users import DuplicateUser, SqlUserStore
from authsvc.tokens.family_decisions import Outcome, Refresh, Rotation, open_session, rotate
from tests.support import fresh_postgres_database

NOW = 1_800_000_000.0


@dataclass
class Stores:
    users: UserStore
    sessions: SessionStore
    clients: ClientStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the in-memory stores, else a database URL (PostgreSQL: a fresh database)."""
    if request.param == "memory":
        yield None
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'authsvc.db'}"
    else:
        url, drop = fresh_postgres_database()
        try:
            yield url
        finally:
            drop()


@pytest.fixture
async def stores(store_url: str | None) -> AsyncIterator[Stores]:
    if store_url is None:
        db = MemoryDatabase()
        yield Stores(MemoryUserStore(db), MemorySessionStore(db), MemoryClientStore(db))
        return
    engine = create_engine(store_url)
    await upgrade(engine)
    sessions = SqlSessionStore.open(store_url, engine)
    try:
        yield Stores(SqlUserStore(engine), sessions, SqlClientStore(engine))
    finally:
        sessions.close()
        await engine.dispose()


def _token(
    jti: str, body: str = "", expires: float = NOW + 100, *, legacy: bool = False
) -> IssuedRefreshToken:
    """A row as issued now (with the digest of its bytes, here ``d-JTI``) or, ``legacy``, as
    written before revision 0007 (no digest)."""
    return IssuedRefreshToken(
        jti=jti,
        kid="k" * 43,
        issued_at=NOW,
        expires_at=expires,
        body=body or f"body-{jti}",
        digest=None if legacy else f"d-{jti}",
    )


async def _session(
    stores: Stores, sid: str = "s1", first: str = "t0", *, legacy: bool = False
) -> SessionRecord:
    user = await stores.users.by_username("alice") or await stores.users.add(
        "alice", "h", NOW, username_key="alice"
    )
    session = SessionRecord(sid, user.id, "cli", "read", NOW, NOW + 1000, None, None)
    created = await open_session(
        stores.sessions,
        session,
        lambda _s: _token(first, legacy=legacy),
        credentials_version=user.credentials_version,
        registered_client=False,
    )
    assert created is not None
    return session


async def _rotate(
    stores: Stores,
    jti: str,
    client_id: str,
    now: float,
    grace: int,
    successor: IssuedRefreshToken,
    *,
    digest: str | None = None,
    signed: bool = True,
) -> Rotation:
    """Present the token ``jti`` (its bytes: ``digest``, by default the ones issued)."""
    return await rotate(
        stores.sessions,
        Refresh(
            jti=jti,
            client_id=client_id,
            now=now,
            grace=grace,
            successor_jti=successor.jti,
            successor=lambda _s: successor,
            digest=digest or f"d-{jti}",
            signed=lambda: signed,
        ),
    )


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
    results = await asyncio.gather(
        *[_rotate(stores, "t0", "cli", NOW + 1, 0, _token(f"n{i}")) for i in range(20)]
    )
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.ROTATED) == 1, outcomes
    assert set(outcomes) <= {Outcome.ROTATED, Outcome.REUSED, Outcome.INVALID}
    session = await stores.sessions.get("s1")
    assert session is not None and session.revoked_reason == "reuse"


async def test_bytes_other_than_the_ones_issued_spend_and_revoke_nothing(stores: Stores) -> None:
    """The row authenticates the token: a forgery naming a live jti is refused and leaves it live;
    one naming a spent jti is not a replay (nothing is revoked)."""
    await _session(stores)
    forged = await _rotate(stores, "t0", "cli", NOW + 1, 0, _token("f1"), digest="d-forged")
    assert forged.outcome is Outcome.INVALID and forged.reason == "not the token issued"
    row = await stores.sessions.token("t0")
    assert row is not None and row.spent_at is None, "expected the live token left unspent"
    assert (await _rotate(stores, "t0", "cli", NOW + 2, 0, _token("t1"))).outcome is Outcome.ROTATED
    again = await _rotate(stores, "t0", "cli", NOW + 3, 0, _token("f2"), digest="d-forged")
    assert again.outcome is Outcome.INVALID, "expected a forgery of a spent token refused, not reuse"
    session = await stores.sessions.get("s1")
    assert session is not None and session.revoked_at is None, "expected the family left alive"
    assert (await _rotate(stores, "t1", "cli", NOW + 4, 0, _token("t2"))).outcome is Outcome.ROTATED


async def test_a_row_from_before_digests_is_spent_only_by_a_signed_token(stores: Stores) -> None:
    await _session(stores, legacy=True)
    forged = await _rotate(stores, "t0", "cli", NOW + 1, 0, _token("f1"), digest="d-any", signed=False)
    assert forged.outcome is Outcome.INVALID
    row = await stores.sessions.token("t0")
    assert row is not None and row.spent_at is None, "expected the forged spend rolled back"
    rotated = await _rotate(stores, "t0", "cli", NOW + 2, 0, _token("t1"), digest="d-any")
    assert rotated.outcome is Outcome.ROTATED, "expected a signed token of an old row to rotate"
    replay = await _rotate(stores, "t0", "cli", NOW + 3, 0, _token("f2"), digest="d-other", signed=False)
    assert replay.outcome is Outcome.INVALID, "expected an unsigned replay of an old row refused"
    session = await stores.sessions.get("s1")
    assert session is not None and session.revoked_at is None
    reuse = await _rotate(stores, "t0", "cli", NOW + 4, 0, _token("f3"), digest="d-other")
    assert reuse.outcome is Outcome.REUSED, "expected a signed replay of an old row to be reuse"


async def test_grace_replays_the_first_body_and_only_for_the_latest_generation(stores: Stores) -> None:
    await _session(stores)
    first = await _rotate(stores, "t0", "cli", NOW + 1, 10, _token("t1", "FIRST"))
    assert (first.outcome, first.body) == (Outcome.ROTATED, "FIRST")
    replay = await _rotate(stores, "t0", "cli", NOW + 5, 10, _token("x"))
    assert (replay.outcome, replay.body) == (Outcome.REPLAYED, "FIRST")
    # the successor is spent: the older generation gets no grace
    assert (await _rotate(stores, "t1", "cli", NOW + 6, 10, _token("t2"))).outcome is (Outcome.ROTATED)
    late = await _rotate(stores, "t0", "cli", NOW + 7, 10, _token("y"))
    assert late.outcome is Outcome.REUSED
    after = await _rotate(stores, "t2", "cli", NOW + 8, 10, _token("t3"))
    assert after.outcome is Outcome.INVALID


async def test_grace_ends(stores: Stores) -> None:
    await _session(stores)
    await _rotate(stores, "t0", "cli", NOW + 1, 10, _token("t1", "FIRST"))
    assert (await _rotate(stores, "t0", "cli", NOW + 11, 10, _token("x"))).outcome is (Outcome.REUSED)


async def test_other_client_unknown_and_expired_tokens_are_invalid(stores: Stores) -> None:
    await _session(stores)
    assert (await _rotate(stores, "t0", "other", NOW, 0, _token("x"))).outcome is (Outcome.INVALID)
    assert (await _rotate(stores, "nope", "cli", NOW, 0, _token("x"))).outcome is (Outcome.INVALID)
    assert (await _rotate(stores, "t0", "cli", NOW + 101, 0, _token("x"))).outcome is (Outcome.INVALID)
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
    assert (await _rotate(stores, "t0", "cli", NOW, 0, _token("x"))).outcome is (Outcome.INVALID)


async def test_prune(stores: Stores) -> None:
    await _session(stores)
    await _rotate(stores, "t0", "cli", NOW + 1, 10, _token("t1", "B", NOW + 200))
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


async def test_a_login_whose_reads_went_stale_writes_nothing(stores: Stores) -> None:
    """The transaction that writes a session re-checks the credentials version and the client."""
    user = await stores.users.add("bob", "h", NOW, username_key="bob")
    client = Client("web", True, frozenset({"password"}), frozenset({"read"}), ())
    await stores.clients.add(client, NOW)

    async def login(sid: str, version: int, registered: bool = True) -> object:
        session = SessionRecord(sid, user.id, "web", "read", NOW, NOW + 1000, None, None)
        return await open_session(
            stores.sessions,
            session,
            lambda _s: _token("t-" + sid),
            credentials_version=version,
            registered_client=registered,
        )

    assert await login("s-ok", user.credentials_version) is not None
    assert await stores.users.change_credentials(user.id, NOW, "password_changed", password_hash="h2") == 1
    assert await login("s-stale", user.credentials_version) is None  # read before the change
    assert await stores.sessions.get("s-stale") is None  # rolled back whole
    assert await stores.sessions.token("t-s-stale") is None
    changed = await stores.users.by_id(user.id)
    assert changed is not None and changed.credentials_version == user.credentials_version + 1
    assert changed.password_hash == "h2"
    ended = await stores.sessions.get("s-ok")
    assert ended is not None and ended.revoked_reason == "password_changed"
    assert await login("s-new", changed.credentials_version) is not None
    assert await stores.clients.remove("web", NOW) == 1  # revokes s-new
    assert await login("s-removed", changed.credentials_version) is None
    assert await login("s-default", changed.credentials_version, registered=False) is not None
    await stores.users.change_credentials(user.id, NOW, "user_disabled", disable=True)
    assert await login("s-disabled", changed.credentials_version + 1, registered=False) is None


async def test_look_alike_keys_are_unique(stores: Stores) -> None:
    await stores.users.add("alice", "h", NOW, username_key="alice")
    with pytest.raises(DuplicateUser):
        await stores.users.add("\u0430lice", "h", NOW, username_key="alice")  # another name, same key
    assert [u.username for u in await stores.users.list()] == ["alice"]


async def test_grace_bodies_are_dropped_when_their_grace_ends(stores: Stores) -> None:
    await _session(stores)
    await _rotate(stores, "t0", "cli", NOW + 1, 10, _token("t1", "FIRST"))
    assert await stores.sessions.drop_grace_bodies(NOW + 10) == 0
    row = await stores.sessions.token("t0")
    assert row is not None and row.grace_body == "FIRST"
    assert await stores.sessions.drop_grace_bodies(NOW + 11) == 1
    row = await stores.sessions.token("t0")
    assert row is not None and row.grace_body is None
