"""Password hashing: argon2id through pwdlib, off the event loop.

At most one hash runs per core (a capacity limiter), so a burst of logins
queues instead of starving the loop. Unknown users are checked against a
dummy hash made with the same parameters, so a login costs the same whether
or not the user exists.
"""

from __future__ import annotations

import os
import secrets

import anyio
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

__all__ = ["PasswordHasher"]


def _usable_cores() -> int:
    """Cores this process may run on (taskset/cgroups), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class PasswordHasher:
    def __init__(self, memory_kib: int, time_cost: int, parallelism: int, workers: int | None = None) -> None:
        self._hash = PasswordHash(
            (Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism),)
        )
        self._workers = workers or _usable_cores()
        self._limiter: anyio.CapacityLimiter | None = None
        self._dummy: str | None = None

    def _limit(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._workers)
        return self._limiter

    def hash_sync(self, password: str) -> str:
        """For the CLI, which has no loop to protect."""
        return self._hash.hash(password)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hash.hash, password, limiter=self._limit())

    async def prepare(self) -> None:
        """Make the dummy hash now (at start), so the first unknown user costs one hash, as any other."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """(valid, new hash if the parameters changed). ``None`` hash: unknown user."""
        if password_hash is None:
            await self.prepare()
            assert self._dummy is not None
            await anyio.to_thread.run_sync(self._verify, password, self._dummy, limiter=self._limit())
            return False, None
        return await anyio.to_thread.run_sync(self._verify, password, password_hash, limiter=self._limit())

    def _verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        try:
            return self._hash.verify_and_update(password, password_hash)
        except Exception:  # an unreadable stored hash is a failed login, not a 500
            return False, None
