"""Checking a person's username and password: once, for the password grant and the hosted login page.

The username is mapped as RFC 8265 says (``ALICE`` is ``alice``) and the
password is taken in its PRECIS OpaqueString form. The attempt is reserved
against the login limits before anything is looked up or hashed; an unknown
user costs the same hash as a known one, so a wrong password and an unknown
user look the same (in time, answer and audit line).
"""

from __future__ import annotations

from authsvc.clock import Clock
from authsvc.errors import InvalidGrant
from authsvc.events import Events, LoginFailed, LoginSucceeded
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.store.protocols import UserStore
from authsvc.store.records import User
from authsvc.usernames import login_name, password_form

__all__ = ["BAD_CREDENTIALS", "PasswordCheck"]

BAD_CREDENTIALS = "The username or password is incorrect."
_MAX_LIMIT_NAME = 200  # an unmappable name is counted by (a prefix of) what was sent


class PasswordCheck:
    def __init__(
        self, users: UserStore, hasher: PasswordHasher, limiter: LoginLimiter, clock: Clock, events: Events
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.limiter = limiter
        self.clock = clock
        self.events = events

    async def user(self, username: str, password: str, *, address: str, client_id: str) -> User:
        """The user these credentials name; InvalidGrant when they are wrong, LoginRateLimited
        (a subclass) when the limits refuse the attempt before it is checked."""
        name = login_name(username)
        attempt = await self.limiter.reserve_login(name or username[:_MAX_LIMIT_NAME], address)
        try:
            user = await self.users.by_username(name) if name is not None else None
            valid, new_hash = await self.hasher.verify(
                password_form(password) or password, user.password_hash if user else None
            )
        except BaseException:
            await self.limiter.abandon(attempt)
            raise
        if user is None or not valid or user.disabled:
            self.events.publish(LoginFailed(client_id=client_id, user_id=user.id if user else None))
            raise InvalidGrant(BAD_CREDENTIALS, detail="bad credentials")
        await self.limiter.succeeded(attempt)
        if new_hash is not None:
            await self.users.replace_hash(user.id, user.password_hash, new_hash, self.clock.now())
        self.events.publish(LoginSucceeded(user_id=user.id, client_id=client_id))
        return user
