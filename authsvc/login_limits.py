"""Failed-login limits, reserved before any password is checked.

Three counters, each a fixed window of ``AUTHSVC_LOGIN_WINDOW`` seconds that
starts with its first count:

* per (username, address): ``AUTHSVC_LOGIN_MAX_PER_USER`` — the guesser's own
  limit; a success clears it;
* per username, from anywhere: ten times that — a ceiling against guessing
  spread over many addresses, high enough that nobody can lock a user out
  from an address of their own;
* per address: ``AUTHSVC_LOGIN_MAX_PER_ADDRESS`` — failed logins and failed
  client authentications together.

A login first *reserves* one count on each (atomically, all or nothing, in
Redis or the database: ``authsvc.store.redis``), and only then may a password be
hashed. So of any burst, however parallel and across however many processes
and instances, at most the limit is checked; the rest get 429. A success gives
the reservation back; a failure keeps it as the count.

Client authentication that checks a cheap secret (generated secrets, SHA-256;
assertions) counts failures per address after the fact and refuses a full
address up front (the "full" answer is cached for ``CHECK_CACHE`` seconds per
address so that a busy client's requests cost no database read each). A
client secret chosen by an operator is an argon2 hash, as costly as a
password: it is reserved first like a login.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass

from authsvc.clock import Clock
from authsvc.errors import ClientAuthRateLimited, LoginRateLimited
from authsvc.store.protocols import Counters
from authsvc.ttl_cache import TtlCache

__all__ = ["USERNAME_CEILING_FACTOR", "LoginAttempt", "LoginLimiter"]

log = logging.getLogger("authsvc")

USERNAME_CEILING_FACTOR = 10
CHECK_CACHE = 0.5


def _key(kind: str, *parts: str) -> str:
    """What a counter is stored under: a hash, so no username or address is written down."""
    return hashlib.sha256("\x00".join((kind, *parts)).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """The counters one reservation added to."""

    keys: tuple[str, ...]
    pair: str | None  # the (username, address) counter a success clears


class LoginLimiter:
    def __init__(
        self, max_per_user: int, max_per_address: int, window: int, counters: Counters, clock: Clock
    ) -> None:
        self.max_per_user = max_per_user
        self.max_per_address = max_per_address
        self.window = window
        self.counters = counters
        self.clock = clock
        self._address_blocked: TtlCache[str, tuple[float]] = TtlCache(CHECK_CACHE)

    @property
    def backend(self) -> str:
        return self.counters.backend

    # --- logins ---------------------------------------------------------------------
    async def reserve_login(self, username: str, address: str) -> LoginAttempt:
        """One attempt at ``username`` from ``address``, or LoginRateLimited (nothing reserved)."""
        pair = _key("user-address", username, address)
        limits = (
            (pair, self.max_per_user),
            (_key("user", username), self.max_per_user * USERNAME_CEILING_FACTOR),
            (_key("address", address), self.max_per_address),
        )
        blocked = await self.counters.reserve(limits, self.window, self.clock.now())
        if blocked > 0:
            raise LoginRateLimited(math.ceil(blocked), detail="login limit")
        return LoginAttempt(tuple(key for key, _ in limits), pair)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: clear the pair's counter, give the other counts back."""
        if attempt.pair is not None:
            await self.counters.clear(attempt.pair)
        await self.counters.release([k for k in attempt.keys if k != attempt.pair], self.clock.now())

    async def abandon(self, attempt: LoginAttempt) -> None:
        """No verdict was reached (an error, a cancellation): the attempt does not count."""
        try:
            await asyncio.shield(self.counters.release(attempt.keys, self.clock.now()))
        except Exception as exc:  # the original error is the one to report
            log.warning("could not give back a login reservation: %s", type(exc).__name__)

    # --- client authentication --------------------------------------------------------
    async def check_client(self, address: str) -> None:
        """ClientAuthRateLimited if ``address`` has used up its failures (cached per address)."""
        found = self._address_blocked.get(address)
        if found is None:

            async def load() -> tuple[float]:
                key = _key("address", address)
                return (await self.counters.blocked_for(key, self.max_per_address, self.clock.now()),)

            found = await self._address_blocked.get_or_load(address, load)
        if found is not None and found[0] > 0:
            raise ClientAuthRateLimited(math.ceil(found[0]))

    async def reserve_client(self, address: str) -> LoginAttempt:
        """Reserve a costly client-secret check (an argon2 hash) like a login."""
        key = _key("address", address)
        blocked = await self.counters.reserve(((key, self.max_per_address),), self.window, self.clock.now())
        if blocked > 0:
            self._address_blocked.forget(address)
            raise ClientAuthRateLimited(math.ceil(blocked))
        return LoginAttempt((key,), None)

    async def client_failed(self, address: str, reserved: LoginAttempt | None = None) -> None:
        """Count a failed client authentication (a reservation already counted it)."""
        if reserved is None:
            await self.counters.add(_key("address", address), self.window, self.clock.now())
        self._address_blocked.forget(address)

    async def client_succeeded(self, reserved: LoginAttempt) -> None:
        await self.counters.release(reserved.keys, self.clock.now())

    async def ping(self) -> bool | None:
        """Redis reachability for /readyz (None: Redis is not configured)."""
        ping = getattr(self.counters, "ping", None)
        return None if ping is None else bool(await ping())

    async def aclose(self) -> None:
        close = getattr(self.counters, "aclose", None)
        if close is not None:
            await close()
