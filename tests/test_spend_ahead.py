"""On PostgreSQL, refreshes queued together spend in one statement and insert their successors
in one (``authsvc.store.sql.spend_ahead``); on both databases a batch means what its writes
would have meant one after another.

Each batch is also run on the in-memory store, which runs writes one at a time in the order
given: the outcomes and the rows left must be the same. On SQLite files and on PostgreSQL,
through the real engines; two stores on one database stand for two processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from authsvc.migrations import upgrade
from authsvc.store.memory import MemoryDatabase, MemorySessionStore, MemoryUserStore
from authsvc.store.protocols import SessionStore, UserStore
from authsvc.store.records import IssuedRefreshToken, SessionRecord, SpendRequest
from authsvc.store.sql.engine import create_engine
from authsvc.store.sql.sessions import SqlSessionStore
from authsvc.store.sql.users import SqlUserStore
from authsvc.tokens.family_decisions import Outcome, Refresh, open_session, rotate

NOW = 1_800_000_000.0


@dataclass
class Stores:
    users: UserStore
    sessions: SessionStore


class _Statements:
    """The statements an engine sends, by their first words (a listener on the real engine)."""

    def __init__(self, store: SqlSessionStore) -> None:
        self.seen: list[str] = []
        event.listen(store.db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(" ".join(statement.split()[:3]).upper())

    def count(self, prefix: str) -> int:
        return sum(1 for s in self.seen if s.startswith(prefix))


@pytest.fixture
async def sql(
    database_url: str,
) -> AsyncIterator[tuple[Stores, SqlSessionStore, Callable[[], SqlSessionStore]]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = SqlSessionStore.open(database_url, engine)
    others: list[SqlSessionStore] = []

    def another() -> SqlSessionStore:  # a second process's store on the same database
        store = SqlSessionStore.open(database_url, engine)
        others.append(store)
        return store

    try:
        yield Stores(SqlUserStore(engine), sessions), sessions, another
    finally:
        for store in [sessions, *others]:
            store.close()
        await engine.dispose()


def _memory() -> Stores:
    db = MemoryDatabase()
    return Stores(MemoryUserStore(db), MemorySessionStore(db))


def _token(jti: str) -> IssuedRefreshToken:
    return IssuedRefreshToken(
        jti=jti, kid="k" * 43, issued_at=NOW, expires_at=NOW + 100, body=f"body-{jti}", digest=f"d-{jti}"
    )


async def _families(stores: Stores, count: int) -> None:
    """Sessions s0..s{count-1}, each with its first token t{i}.0."""
    user = await stores.users.add("alice", "h", NOW, username_key="alice")
    for i in range(count):
        session = SessionRecord(f"s{i}", user.id, "cli", "read", NOW, NOW + 1000, None, None)
        opened = await open_session(
            stores.sessions,
            session,
            lambda _s, i=i: _token(f"t{i}.0"),  # type: ignore[misc]
            credentials_version=user.credentials_version,
            registered_client=False,
        )
        assert opened is not None


def _refresh(jti: str, successor: str, *, digest: str | None = None, client: str = "cli") -> Refresh:
    return Refresh(
        jti=jti,
        client_id=client,
        now=NOW + 1,
        grace=0,
        successor_jti=successor,
        successor=lambda _s: _token(successor),
        digest=digest or f"d-{jti}",
        signed=lambda: True,
    )


async def _batch(sessions: SessionStore, refreshes: list[Refresh]) -> list[tuple[Outcome, str | None]]:
    """The refreshes queued in one step of the loop (one batch), their outcomes in order."""
    results = await asyncio.gather(*[rotate(sessions, r) for r in refreshes])
    return [(r.outcome, r.reason) for r in results]


async def _rows(stores: Stores, jtis: list[str]) -> list[tuple[str, bool, str | None] | None]:
    out: list[tuple[str, bool, str | None] | None] = []
    for jti in jtis:
        row = await stores.sessions.token(jti)
        out.append(None if row is None else (row.session_id, row.spent_at is not None, row.successor_jti))
    return out


async def _sessions_state(stores: Stores, count: int) -> list[str | None]:
    states = []
    for i in range(count):
        session = await stores.sessions.get(f"s{i}")
        assert session is not None
        states.append(session.revoked_reason)
    return states


async def test_refreshes_queued_together_spend_in_one_statement_and_insert_in_one(sql: Any) -> None:
    stores, store, _another = sql
    await _families(stores, 20)
    statements = _Statements(store)
    outcomes = await _batch(store, [_refresh(f"t{i}.0", f"t{i}.1") for i in range(20)])
    assert outcomes == [(Outcome.ROTATED, "")] * 20
    spends = statements.count("UPDATE REFRESH_TOKENS SET") + statements.count("WITH SPENT AS")
    inserts = statements.count("INSERT INTO REFRESH_TOKENS")
    if store.db.engine.dialect.name == "postgresql":
        assert spends <= 4 and inserts <= 4, f"expected shared statements: {spends} spends, {inserts} inserts"
    else:  # SQLite keeps a statement a write
        assert (spends, inserts) == (20, 20)
    rows = await _rows(stores, [f"t{i}.{g}" for i in range(20) for g in (0, 1)])
    for i in range(20):
        assert rows[2 * i] == (f"s{i}", True, f"t{i}.1"), "expected the presented token spent"
        assert rows[2 * i + 1] == (f"s{i}", False, None), "expected its successor stored, unspent"
    assert await _batch(store, [_refresh(f"t{i}.1", f"t{i}.2") for i in range(20)]) == outcomes


_MIXED = [
    _refresh("t0.0", "t0.1"),
    _refresh("t1.0", "x1"),  # a spent token again: reuse, family 1 revoked
    _refresh("t2.0", "x2", digest="d-forged"),  # not the bytes issued: refused, left live
    _refresh("t3.0", "t3.1"),
    _refresh("t4.0", "t4.1"),  # the same token twice: the first wins, the second is reuse
    _refresh("t4.0", "x4"),
    _refresh("t5.0", "x5", client="other"),  # another client's: refused, nothing revoked
    _refresh("nope", "x6"),
    _refresh("t6.0", "t6.1"),
    _refresh("t1.1", "x7"),  # family 1's live token, in the batch that revokes it
]
#: The serial order the batch means on PostgreSQL: the refreshes whose spends succeed (live
#: tokens, each presented once) first, in queue order; then the rest, in queue order. SQLite
#: runs a batch in queue order.
_SERIAL = [0, 3, 8, 9, 1, 2, 4, 5, 6, 7]
_MIXED_ROWS = [
    "t0.0",
    "t0.1",
    "t1.1",
    "x1",
    "t2.0",
    "x2",
    "t3.1",
    "t4.0",
    "t4.1",
    "x4",
    "t5.0",
    "x6",
    "t6.1",
    "x7",
]


async def _mixed(stores: Stores, order: list[int]) -> list[tuple[Outcome, str | None]]:
    """The mixed batch, queued in ``order``, after one rotation of family 1; outcomes in
    ``_MIXED``'s order."""
    await _families(stores, 8)
    assert (await _batch(stores.sessions, [_refresh("t1.0", "t1.1")]))[0][0] is Outcome.ROTATED
    outcomes = await _batch(stores.sessions, [_MIXED[i] for i in order])
    return [outcome for _i, outcome in sorted(zip(order, outcomes, strict=True))]


async def test_a_mixed_batch_means_what_its_writes_mean_one_after_another(sql: Any) -> None:
    """Reuse, forgery, another client's token, an unknown one and a token presented twice, in
    one batch with plain refreshes: what they would mean run one at a time (in memory), in the
    order the batch gives them (``_SERIAL``)."""
    stores, store, _another = sql
    reference = _memory()
    postgres = store.db.engine.dialect.name == "postgresql"
    expected = await _mixed(reference, _SERIAL if postgres else list(range(len(_MIXED))))
    assert expected[1][0] is Outcome.REUSED and expected[0] == (Outcome.ROTATED, "")  # the scenario holds
    assert await _mixed(stores, list(range(len(_MIXED)))) == expected
    assert await _rows(stores, _MIXED_ROWS) == await _rows(reference, _MIXED_ROWS)
    assert await _sessions_state(stores, 8) == await _sessions_state(reference, 8)


async def test_a_refresh_into_an_ended_session_rolls_back_its_spend_in_a_batch(sql: Any) -> None:
    stores, store, _another = sql
    await _families(stores, 6)
    assert await store.revoke("s2", NOW, "logout")
    outcomes = await _batch(store, [_refresh(f"t{i}.0", f"t{i}.1") for i in range(6)])
    assert outcomes[2] == (Outcome.INVALID, "session ended")
    assert [o for i, o in enumerate(outcomes) if i != 2] == [(Outcome.ROTATED, "")] * 5
    rows = await _rows(stores, ["t2.0", "t2.1", "t3.0", "t3.1"])
    assert rows[0] == ("s2", False, None), "expected the refused spend rolled back"
    assert rows[1] is None
    assert rows[2] == ("s3", True, "t3.1") and rows[3] == ("s3", False, None)


async def test_two_processes_spending_the_same_tokens_at_once_rotate_each_once(sql: Any) -> None:
    stores, store, another = sql
    await _families(stores, 16)
    other = another()
    ours, theirs = await asyncio.gather(
        _batch(store, [_refresh(f"t{i}.0", f"a{i}") for i in range(16)]),
        _batch(other, [_refresh(f"t{i}.0", f"b{i}") for i in range(16)]),
    )
    for i in range(16):
        pair = {ours[i][0], theirs[i][0]}
        assert Outcome.ROTATED in pair and len(pair) == 2, f"family {i}: {ours[i]} and {theirs[i]}"
        assert pair <= {Outcome.ROTATED, Outcome.REUSED}
        winner = f"a{i}" if ours[i][0] is Outcome.ROTATED else f"b{i}"
        loser = f"b{i}" if winner.startswith("a") else f"a{i}"
        rows = await _rows(stores, [f"t{i}.0", winner, loser])
        assert rows[0] == (f"s{i}", True, winner), "expected the spend to name the winner's successor"
        assert rows[1] == (f"s{i}", False, None) and rows[2] is None
    assert await _sessions_state(stores, 16) == ["reuse"] * 16


async def test_a_batch_whose_shared_spend_fails_runs_again_write_by_write(sql: Any) -> None:
    """A database error in the shared statement (a deadlock between two processes' batches, say)
    costs the batch a second run, statement by statement: every refresh still rotates once."""
    stores, store, _another = sql
    await _families(stores, 12)
    failed: list[str] = []

    def fail_once(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("WITH SPENT AS") and not failed:
            failed.append(statement)
            raise OperationalError(statement, {}, Exception("deadlock detected"))

    event.listen(store.db.engine, "before_cursor_execute", fail_once)
    outcomes = await _batch(store, [_refresh(f"t{i}.0", f"t{i}.1") for i in range(12)])
    assert outcomes == [(Outcome.ROTATED, "")] * 12
    if store.db.engine.dialect.name == "postgresql":
        assert failed, "expected the shared spend to have run (and failed once)"
    rows = await _rows(stores, [f"t{i}.1" for i in range(12)])
    assert rows == [(f"s{i}", False, None) for i in range(12)]


async def test_a_write_that_announces_a_spend_and_does_not_make_it_spends_nothing(sql: Any) -> None:
    """The spend ran ahead on the write's word; a write that then does something else must not
    leave that token spent (the batch runs again the old way), nor cost the others theirs."""
    stores, store, _another = sql
    await _families(stores, 6)
    liar = SpendRequest("t5.0", "cli", NOW + 1, "never", "d-t5.0")
    results = await asyncio.gather(
        *[rotate(store, _refresh(f"t{i}.0", f"t{i}.1")) for i in range(5)],
        store.write(lambda tx: "did something else", spend=liar),
    )
    assert [r.outcome for r in results[:5]] == [Outcome.ROTATED] * 5
    assert results[5] == "did something else"
    assert (await _rows(stores, ["t5.0"]))[0] == ("s5", False, None), "expected t5.0 left unspent"
    assert (await _batch(store, [_refresh("t5.0", "t5.1")]))[0][0] is Outcome.ROTATED
