"""Whole transactions on a synchronous driver, one worker-thread hop each, and writes that
arrive together committed together.

Through the async drivers every statement is a round trip between the event
loop and the driver (aiosqlite's thread, asyncpg's protocol), and SQLAlchemy's
async adaptation costs as much again: a three-statement refresh spent about
1 ms of the loop's CPU on it. Here the loop hands the whole transaction to a
worker thread, where the same SQLAlchemy Core statements run back to back on
sqlite3 or psycopg. The code path is the same for both databases; only the
driver differs.

Group commit: writes queue, and one flusher runs whatever has queued as one
transaction on one thread hop. Writes almost never raise (a refresh that
finds its session ended, a login limit reached, a database error), so a batch
first runs them back to back without savepoints: on PostgreSQL a savepoint
and its release are two more round trips per write, as many as a refresh's own
statements. If any write raises, that whole transaction is rolled back and the
batch runs again with each write inside a savepoint of its own (and so do the
next few batches, so that a stream of failing writes, a password-guessing
burst against the login limits say, cannot make every batch run twice): a
write that raises there rolls back to its savepoint and gets its exception;
the others go on. Everyone's result is released only after the one commit, so
no answer leaves before what it depends on is durable. Under load the thread hop,
the commit and the GIL hand-backs of a worker thread (each driver call releases
the GIL, and getting it back from a busy loop is what a transaction mostly
waited for) are paid once per batch instead of once per write, while the
SQLite write lock is held for one batch at a time. Writes in a batch see each
other's effects, as if they ran one after another in queue order. On PostgreSQL
refreshes go further: a write that begins with a refresh token's
compare-and-set says so (``SpendRequest``), and a batch with several runs their
spends ahead as one statement and inserts their successors' rows as one
(``spend_ahead``); the writes whose spend succeeded then count as the first in
the queue. A write that
failed on a database error inside a batch (a PostgreSQL deadlock between two
processes' batches, say) runs again alone before it is answered.

On SQLite the writers of one process queue on the asyncio lock that
``write_transaction`` uses too, so the busy handler (which sleeps) is met only
between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.records import SpendRequest
from authsvc.store.sql.engine import create_sync_engine, write_lock
from authsvc.store.sql.prepared import driver_execute
from authsvc.store.sql.spend_ahead import SpendAhead

__all__ = ["ThreadedDatabase"]

T = TypeVar("T")

# Threads, and so at most this many connections at once: PostgreSQL's pool is 10 + 10.
_THREADS_SQLITE = 4
_THREADS_POSTGRES = 10
#: Writes one transaction takes at most (a refresh's work: a few statements each).
MAX_BATCH = 64
# Concurrent batches: SQLite has one writer anyway. On PostgreSQL two once beat one, overlapping a
# batch's per-write round trips; since a batch's spends and inserts are shared (``spend_ahead``) it
# has four round trips (BEGIN, spend, insert, COMMIT; the pool's check is local: ``liveness``)
# whatever its size, and one flusher's larger batches won A/B runs of scripts/bench_profile.py:
# EdDSA refresh 0.46-0.48 against 0.52-0.57 ms of server CPU, p99 26-29 against 30-36 ms; RS256
# 0.93-0.95 against 1.04-1.07 ms, p99 41-45 against 59-63 ms. Measured again 2026-12-08 in
# interleaved rounds: two flushers left the server's core idle 4 % of the time instead of 12 %, but
# cost 11 % more CPU a refresh (smaller batches), 0.87x one flusher's req/s; a second batch only
# once eight writes wait, 1.03x (noise).
_FLUSHERS_SQLITE = 1
_FLUSHERS_POSTGRES = 1
#: Batches that run with savepoints straight away after one whose write raised.
SAVEPOINTS_AFTER_FAILURE = 16

_Fn = Callable[[Connection], Any]
_Write = tuple[_Fn, "asyncio.Future[Any]", SpendRequest | None]


class _Failed:
    """A write's exception, carried back from the worker thread."""

    __slots__ = ("error", "retry")

    def __init__(self, error: BaseException, retry: bool) -> None:
        self.error = error
        self.retry = retry


class _WriteRaised(Exception):
    """A write raised in a batch run without savepoints: roll the whole batch back."""


class ThreadedDatabase:
    """Run ``fn(connection)`` in one transaction on a worker thread."""

    def __init__(self, database_url: str, async_engine: AsyncEngine) -> None:
        self.engine: Engine = create_sync_engine(database_url)
        # Shared with the async engine's writers to the same SQLite file.
        self._lock = write_lock(async_engine)
        sqlite = self.engine.dialect.name == "sqlite"
        self._sqlite = sqlite
        threads = _THREADS_SQLITE if sqlite else _THREADS_POSTGRES
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="authsvc-db")
        self._queue: list[_Write] = []
        self._max_flushers = _FLUSHERS_SQLITE if sqlite else _FLUSHERS_POSTGRES
        self._flushing = 0  # flushers running; counted down in the step that sees the queue empty
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run
        # Batches still to run with savepoints after a failure (a heuristic: flushers racing on
        # it shift it by a batch at most).
        self._savepoint_batches = 0

    def _begin(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[Connection], T], *, spend: SpendRequest | None = None) -> T:
        """``fn`` in a write transaction: committed if it returns, rolled back if it raises.

        It may share its transaction with other writes queued at the same time;
        it is answered after the commit. ``spend``: the refresh-token spend ``fn``
        begins with (through ``SqlSessionTransaction.spend``), which may run ahead.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, future, spend))
        if self._flushing < self._max_flushers:
            self._flushing += 1
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction that writes nothing (no writer lock)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._begin, fn)

    async def _flush(self) -> None:
        try:
            await self._drain()
        finally:
            # No await between the drain's last look at the queue and this: a write queued
            # after it sees one flusher fewer and starts its own.
            self._flushing -= 1

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            async with self._lock or contextlib.nullcontext():
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                if not batch:
                    break
                writes = [(fn, spend) for fn, _future, spend in batch]
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._run_batch, writes)
                except BaseException as exc:  # the commit (or the connection) failed: nobody's write held
                    for _fn, future, _spend in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                again: list[tuple[_Fn, asyncio.Future[Any]]] = []
                for (fn, future, _spend), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller went away (cancelled)
                        continue
                    if isinstance(outcome, _Failed):
                        if outcome.retry:
                            again.append((fn, future))
                        else:
                            future.set_exception(outcome.error)
                    else:
                        future.set_result(outcome)
                for fn, future in again:
                    try:
                        result = await loop.run_in_executor(self._executor, self._begin, fn)
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(result)

    def _run_batch(self, writes: list[tuple[_Fn, SpendRequest | None]]) -> list[Any]:
        """The writes in one transaction; their results or ``_Failed``."""
        fns = [fn for fn, _spend in writes]
        if len(fns) == 1:  # nothing to share: no savepoint
            try:
                return [self._begin(fns[0])]
            except Exception as exc:
                return [_Failed(exc, retry=False)]
        if self._savepoint_batches > 0:
            self._savepoint_batches -= 1
        else:
            try:
                return self._run_together(writes)
            except _WriteRaised:
                self._savepoint_batches = SAVEPOINTS_AFTER_FAILURE
        return self._run_in_savepoints(fns)

    def _begin_batch(self, conn: Connection) -> None:
        if self._sqlite:
            # sqlite3 opens a transaction only before the first data change (and SQLite
            # commits when the outermost savepoint is released): open it first.
            driver_execute(conn, "BEGIN")

    def _run_together(self, writes: list[tuple[_Fn, SpendRequest | None]]) -> list[Any]:
        """The writes back to back in one transaction; ``_WriteRaised`` (all rolled back) if one
        raised. Refreshes whose spends ran ahead and succeeded go first, in queue order."""
        outcomes: list[Any] = [None] * len(writes)
        with self.engine.begin() as conn:
            self._begin_batch(conn)
            ahead: SpendAhead | None = None
            try:  # leaving ``begin`` with an exception rolls the transaction back
                ahead = SpendAhead(conn, [spend for _fn, spend in writes])
                for index in sorted(ahead.spent):
                    fn, spend = writes[index]
                    outcomes[index] = fn(conn)
                    ahead.check_taken(spend)
                for index, (fn, _spend) in enumerate(writes):
                    if index not in ahead.spent:
                        ahead.settle()  # the waiting successor rows go in before anything else runs
                        outcomes[index] = fn(conn)
                ahead.settle()
            except Exception as exc:
                raise _WriteRaised from exc
            finally:
                if ahead is not None:
                    ahead.close()
        return outcomes

    def _run_in_savepoints(self, fns: list[Callable[[Connection], Any]]) -> list[Any]:
        """The writes in one transaction, each in a savepoint; their results or ``_Failed``."""
        outcomes: list[Any] = []
        with self.engine.begin() as conn:
            self._begin_batch(conn)
            for index, fn in enumerate(fns):
                name = f"authsvc_w{index}"
                driver_execute(conn, f"SAVEPOINT {name}")
                try:
                    outcome = fn(conn)
                except Exception as exc:
                    driver_execute(conn, f"ROLLBACK TO SAVEPOINT {name}")
                    driver_execute(conn, f"RELEASE SAVEPOINT {name}")
                    outcomes.append(_Failed(exc, retry=isinstance(exc, DBAPIError)))
                    continue
                driver_execute(conn, f"RELEASE SAVEPOINT {name}")
                outcomes.append(outcome)
        return outcomes

    async def dispose(self) -> None:
        """Close the pooled connections; the threads stay for later calls."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.dispose)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.engine.dispose()
        self._executor.shutdown(wait=True)
