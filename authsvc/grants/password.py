"""The resource owner password grant (RFC 6749 §4.3), for first-party clients.

The username is mapped as RFC 8265 says (``ALICE`` is ``alice``) and the
password is taken in its PRECIS OpaqueString form. The attempt is reserved
against the login limits before anything is looked up or hashed; an unknown
user costs the same hash as a known one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from authsvc.errors import InvalidGrant, InvalidRequest, InvalidScope
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.store.records import Client, User
from authsvc.store.sql.users import SqlUserStore
from authsvc.tokens.sessions import SessionService, TokenResponse, parse_scope
from authsvc.usernames import login_name, password_form

__all__ = ["handle"]

audit = logging.getLogger("authsvc.audit")

_MAX_LIMIT_NAME = 200  # an unmappable name is counted by (a prefix of) what was sent


async def handle(
    form: Mapping[str, str],
    client: Client,
    *,
    users: SqlUserStore,
    hasher: PasswordHasher,
    sessions: SessionService,
    limiter: LoginLimiter,
    address: str,
) -> TokenResponse:
    username = form.get("username")
    password = form.get("password")
    if username is None:
        raise InvalidRequest("The username parameter is required.")
    if password is None:
        raise InvalidRequest("The password parameter is required.")
    requested = parse_scope(form.get("scope"))
    name = login_name(username)
    attempt = await limiter.reserve_login(name or username[:_MAX_LIMIT_NAME], address)
    try:
        user = await users.by_username(name) if name is not None else None
        valid, new_hash = await hasher.verify(
            password_form(password) or password, user.password_hash if user else None
        )
    except BaseException:
        await limiter.abandon(attempt)
        raise
    if user is None or not valid or user.disabled:
        audit.info(
            "login failed",
            extra={"event": "login.failed", "client_id": client.id, "user_id": user.id if user else None},
        )
        raise InvalidGrant("The username or password is incorrect.", detail="bad credentials")
    await limiter.succeeded(attempt)
    return await _sign_in(user, client, requested, new_hash, users=users, sessions=sessions)


async def _sign_in(
    user: User,
    client: Client,
    requested: frozenset[str] | None,
    new_hash: str | None,
    *,
    users: SqlUserStore,
    sessions: SessionService,
) -> TokenResponse:
    if new_hash is not None:
        await users.replace_hash(user.id, user.password_hash, new_hash, sessions.clock.now())
    allowed = user.scopes if client.scopes is None else user.scopes & client.scopes
    scopes = allowed if requested is None else requested
    if not scopes <= allowed:
        raise InvalidScope()
    audit.info("login", extra={"event": "login.succeeded", "client_id": client.id, "user_id": user.id})
    return await sessions.start(user, client, scopes)
