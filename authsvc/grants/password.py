"""The resource owner password grant (RFC 6749 §4.3), for first-party clients."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from authsvc.errors import InvalidGrant, InvalidRequest, InvalidScope
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.store.records import Client
from authsvc.store.sql.users import SqlUserStore
from authsvc.tokens.sessions import SessionService, TokenResponse, parse_scope

__all__ = ["handle"]

audit = logging.getLogger("authsvc.audit")


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
    await limiter.check(username, address)
    user = await users.by_username(username)
    valid, new_hash = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not valid or user.disabled:
        await limiter.failed(username, address)
        audit.info(
            "login failed",
            extra={"event": "login.failed", "client_id": client.id, "user_id": user.id if user else None},
        )
        raise InvalidGrant("The username or password is incorrect.", detail="bad credentials")
    await limiter.succeeded(username)
    if new_hash is not None:
        await users.replace_hash(user.id, user.password_hash, new_hash, sessions.clock.now())
    allowed = user.scopes if client.scopes is None else user.scopes & client.scopes
    scopes = allowed if requested is None else requested
    if not scopes <= allowed:
        raise InvalidScope()
    audit.info("login", extra={"event": "login.succeeded", "client_id": client.id, "user_id": user.id})
    return await sessions.start(user, client, scopes)
