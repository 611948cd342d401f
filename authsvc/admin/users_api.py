"""/admin/users: list, add, read, change (disable, password, scopes, profile), delete; sessions.

The rules are the command line's: RFC 8265 names (``authsvc.usernames``),
passwords of at least ``AUTHSVC_PASSWORD_MIN_LENGTH``, hashed with argon2 off
the event loop; a new password or a disable ends every session at once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authsvc.admin.body import json_body, optional
from authsvc.admin.context import AdminContext, ok
from authsvc.admin.problems import Problem
from authsvc.scopes import split_scope
from authsvc.store.records import User
from authsvc.store.sql.users import DuplicateUser
from authsvc.usernames import InvalidPassword, InvalidUsername, login_name, new_password, new_username

__all__ = [
    "add_user",
    "delete_user",
    "get_user",
    "list_users",
    "logout_user",
    "sessions",
    "update_user",
    "user_json",
]


def user_json(user: User) -> dict[str, Any]:
    return {
        "sub": user.id,
        "username": user.username,
        "email": user.email,
        "full_name": user.full_name,
        "scopes": sorted(user.scopes),
        "disabled": user.disabled,
    }


async def _user(ctx: AdminContext, request: Request) -> User:
    name = login_name(request.path_params["name"])
    user = await ctx.services.users.by_username(name) if name is not None else None
    if user is None:
        raise Problem(404, "No such user.")
    return user


def _scopes(body: dict[str, Any]) -> frozenset[str] | None:
    value = optional(body, "scope", str)
    if value is None:
        return None
    scopes = split_scope(" ".join(value.split())) if value.strip() else frozenset()
    if scopes is None:
        raise Problem(400, "scope must be space-separated scope tokens.")
    return scopes


def _text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value: str | None = optional(body, name, str)
    if value is not None and (len(value) > limit or not value.isprintable()):
        raise Problem(400, f"{name} is too long or not printable.")
    return value


async def _password_hash(ctx: AdminContext, body: dict[str, Any]) -> str | None:
    password = optional(body, "password", str)
    if password is None:
        return None
    try:
        checked = new_password(password, ctx.services.settings.password_min_length)
    except InvalidPassword as bad:
        raise Problem(400, str(bad)) from None
    hashed: str = await ctx.services.hasher.hash(checked)
    return hashed


async def list_users(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    return ok({"users": [user_json(u) for u in await ctx.services.users.list()]})


async def get_user(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    return ok(user_json(await _user(ctx, request)))


async def add_user(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    body = await json_body(request, ("username", "password", "scope", "email", "full_name"))
    services = ctx.services
    try:
        username, key = new_username(optional(body, "username", str) or "")
    except InvalidUsername:
        raise Problem(400, "username is not a valid user name (RFC 8265).") from None
    if optional(body, "password", str) is None:
        raise Problem(400, "password is required.")
    password_hash = await _password_hash(ctx, body)
    assert password_hash is not None
    if username == services.settings.default_client_id or await services.clients.store.get(username):
        raise Problem(409, "A user name may not equal a client id.")
    try:
        user = await services.users.add(
            username,
            password_hash,
            services.clock.now(),
            username_key=key,
            scopes=_scopes(body) or frozenset(),
            email=_text(body, "email", 320),
            full_name=_text(body, "full_name", 300),
        )
    except DuplicateUser:
        raise Problem(409, "That user exists, or a name that looks the same.") from None
    ctx.audit(admin, "user.add", user.id)
    return ok(user_json(user), 201)


async def update_user(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    user = await _user(ctx, request)
    body = await json_body(request, ("disabled", "password", "scope", "email", "full_name"))
    services = ctx.services
    now = services.clock.now()
    disabled = optional(body, "disabled", bool)
    password_hash = await _password_hash(ctx, body)
    scopes, email, full_name = _scopes(body), _text(body, "email", 320), _text(body, "full_name", 300)
    if scopes is not None or email is not None or full_name is not None:
        await services.users.update_profile(user.id, now, scopes=scopes, email=email, full_name=full_name)
    if password_hash is not None or disabled is True:
        # One transaction: the credentials version moves and every session ends.
        await services.users.change_credentials(
            user.id,
            now,
            "disabled" if disabled else "password",
            password_hash=password_hash,
            disable=bool(disabled),
        )
    if disabled is False:
        await services.users.set_disabled(user.username, False, now)
    services.recent_users.clear()
    ctx.audit(admin, "user.update", user.id)
    changed = await services.users.by_id(user.id)
    assert changed is not None
    return ok(user_json(changed))


async def delete_user(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    user = await _user(ctx, request)
    await ctx.services.users.delete(user.id)
    ctx.services.recent_users.clear()
    ctx.audit(admin, "user.delete", user.id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def sessions(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    user = await _user(ctx, request)
    live = await ctx.services.session_store.live_for_user(user.id, ctx.services.clock.now())
    return ok(
        {
            "sessions": [
                {
                    "sid": s.id,
                    "client_id": s.client_id,
                    "scope": s.scope,
                    "created_at": s.created_at,
                    "expires_at": s.expires_at,
                }
                for s in live
            ]
        }
    )


async def logout_user(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    user = await _user(ctx, request)
    count = await ctx.services.session_store.revoke_user(user.id, ctx.services.clock.now(), "logout")
    ctx.audit(admin, "user.logout", user.id)
    return ok({"revoked": count})
