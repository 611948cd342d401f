"""Whole transactions on a synchronous driver, one worker-thread hop each.

Through the async drivers every statement is a round trip between the event
loop and the driver (aiosqlite's thread, asyncpg's protocol), and SQLAlchemy's
async adaptation costs as much again: a three-statement refresh spent about
1 ms of the loop's CPU on it. Here the loop hands the whole transaction to a
worker thread, where the same SQLAlchemy Core statements run back to back on
sqlite3 or psycopg: one hop per transaction, about a quarter of the CPU. The
code path is the same for both databases; only the driver differs.

On SQLite the writers of one process queue on the asyncio lock that
``write_transaction`` uses too, so the busy handler (which sleeps) is met only
between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from authsvc.store.sql.engine import create_sync_engine, write_lock

__all__ = ["ThreadedDatabase"]

T = TypeVar("T")

# Threads, and so at most this many connections at once: PostgreSQL's pool is 10 + 10.
_THREADS_SQLITE = 4
_THREADS_POSTGRES = 10


class ThreadedDatabase:
    """Run ``fn(connection)`` in one transaction on a worker thread."""

    def __init__(self, database_url: str, async_engine: AsyncEngine) -> None:
        self.engine: Engine = create_sync_engine(database_url)
        # Shared with the async engine's writers to the same SQLite file.
        self._lock = write_lock(async_engine)
        threads = _THREADS_SQLITE if self.engine.dialect.name == "sqlite" else _THREADS_POSTGRES
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="authsvc-db")

    def _begin(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a write transaction: committed if it returns, rolled back if it raises."""
        async with self._lock or contextlib.nullcontext():
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._begin, fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction that writes nothing (no writer lock)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._begin, fn)

    async def dispose(self) -> None:
        """Close the pooled connections; the threads stay for later calls."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.dispose)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.engine.dispose()
        self._executor.shutdown(wait=True)
