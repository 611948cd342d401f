"""The in-memory tables and their all-or-nothing transactions."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from authsvc.store.records import Client, RefreshTokenRow, SessionRecord, User

__all__ = ["MemoryDatabase", "Tables", "revoke_where"]

T = TypeVar("T")


@dataclass
class Tables:
    """Every table as a dict by primary key; what SQL's foreign keys and unique indexes guard,
    the stores check themselves."""

    users: dict[str, User] = field(default_factory=dict)
    username_keys: dict[str, str] = field(default_factory=dict)  # look-alike key -> user id
    clients: dict[str, Client] = field(default_factory=dict)
    removed_clients: dict[str, float] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    tokens: dict[str, RefreshTokenRow] = field(default_factory=dict)
    revoked_access: dict[str, float] = field(default_factory=dict)
    assertions: dict[tuple[str, str], float] = field(default_factory=dict)
    counters: dict[str, tuple[int, float]] = field(default_factory=dict)


class MemoryDatabase:
    """Every table, one lock, and all-or-nothing transactions."""

    def __init__(self) -> None:
        self.tables = Tables()
        self.lock = asyncio.Lock()

    async def transaction(self, fn: Callable[[Tables], T]) -> T:
        async with self.lock:
            # A copy of every dict (rows are frozen): put back whole if ``fn`` raises.
            before = copy.copy(self.tables)
            for name in vars(before):
                setattr(before, name, dict(getattr(before, name)))
            try:
                return fn(self.tables)
            except BaseException:
                self.tables = before
                raise


def revoke_where(t: Tables, match: Callable[[SessionRecord], bool], now: float, reason: str) -> int:
    """Revoke every live session ``match`` selects; how many."""
    count = 0
    for session in list(t.sessions.values()):
        if session.revoked_at is None and match(session):
            t.sessions[session.id] = replace(session, revoked_at=now, revoked_reason=reason)
            count += 1
    return count
