"""The storage protocols in memory: the same behaviour as ``authsvc.store.sql``, for tests.

One ``MemoryDatabase`` holds every table as a dict behind one lock; a
transaction runs under the lock and puts the tables back as they were if it
raises, so a rolled-back spend or login leaves nothing behind, as in SQL.
Nothing here survives the process.
"""

from __future__ import annotations

from authsvc.store.memory.clients import MemoryClientStore
from authsvc.store.memory.counters import MemoryCounters
from authsvc.store.memory.sessions import MemorySessionStore, MemorySessionTransaction
from authsvc.store.memory.tables import MemoryDatabase
from authsvc.store.memory.users import MemoryUserStore

__all__ = [
    "MemoryClientStore",
    "MemoryCounters",
    "MemoryDatabase",
    "MemorySessionStore",
    "MemorySessionTransaction",
    "MemoryUserStore",
]
