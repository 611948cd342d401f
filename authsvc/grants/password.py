"""The resource owner password grant (RFC 6749 §4.3), for first-party clients.

The username is mapped as RFC 8265 says (``ALICE`` is ``alice``) and the
password is taken in its PRECIS OpaqueString form. The attempt is reserved
against the login limits before anything is looked up or hashed; an unknown
user costs the same hash as a known one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from authsvc.clock import Clock
from authsvc.errors import InvalidGrant, InvalidRequest
from authsvc.events import Events, LoginFailed, LoginSucceeded
from authsvc.grants.base import GrantRequest, requested_scope
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.scopes import granted_scopes
from authsvc.store.protocols import UserStore
from authsvc.tokens.families import Families, TokenResponse
from authsvc.usernames import login_name, password_form

__all__ = ["PasswordGrant"]

_MAX_LIMIT_NAME = 200  # an unmappable name is counted by (a prefix of) what was sent


class PasswordGrant:
    grant_type: ClassVar[str] = "password"
    parameters: ClassVar[dict[str, dict[str, Any]]] = {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "scope": {"type": "string"},
    }
    default_client: ClassVar[bool] = True  # CONTRACT.md: acts as AUTHSVC_DEFAULT_CLIENT_ID

    def __init__(
        self,
        users: UserStore,
        hasher: PasswordHasher,
        limiter: LoginLimiter,
        families: Families,
        clock: Clock,
        events: Events,
    ) -> None:
        self.events = events
        self.users = users
        self.hasher = hasher
        self.limiter = limiter
        self.families = families
        self.clock = clock

    async def handle(self, request: GrantRequest) -> TokenResponse:
        form, client = request.form, request.client
        username = form.get("username")
        password = form.get("password")
        if username is None:
            raise InvalidRequest("The username parameter is required.")
        if password is None:
            raise InvalidRequest("The password parameter is required.")
        requested = requested_scope(form)
        name = login_name(username)
        attempt = await self.limiter.reserve_login(name or username[:_MAX_LIMIT_NAME], request.address)
        try:
            user = await self.users.by_username(name) if name is not None else None
            valid, new_hash = await self.hasher.verify(
                password_form(password) or password, user.password_hash if user else None
            )
        except BaseException:
            await self.limiter.abandon(attempt)
            raise
        if user is None or not valid or user.disabled:
            self.events.publish(LoginFailed(client_id=client.id, user_id=user.id if user else None))
            raise InvalidGrant("The username or password is incorrect.", detail="bad credentials")
        await self.limiter.succeeded(attempt)
        if new_hash is not None:
            await self.users.replace_hash(user.id, user.password_hash, new_hash, self.clock.now())
        allowed = user.scopes if client.scopes is None else user.scopes & client.scopes
        scopes = granted_scopes(allowed, requested)
        self.events.publish(LoginSucceeded(user_id=user.id, client_id=client.id))
        return await self.families.start(user, client, scopes)
