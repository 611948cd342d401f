"""The users pages: the list; one user's details and sessions, disable or enable, a new
password, log out everywhere."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from authsvc.console.context import ConsoleContext, see_other
from authsvc.console.sessions import ConsoleSession

__all__ = ["log_out_everywhere", "set_disabled", "set_password", "user_page", "users_page"]


def _path(request: Request) -> str:
    return f"/admin/users/{quote(request.path_params['name'], safe='')}"


def _back(request: Request) -> Response:
    return see_other("/console" + _path(request).removeprefix("/admin"))


async def users_page(ctx: ConsoleContext, request: Request, session: ConsoleSession) -> Response:
    answer = await ctx.call(request, session, "GET", "/admin/users")
    users = sorted(answer["users"], key=lambda u: u["username"])
    return ctx.page(request, session, "users.html", "users", users=users)


async def user_page(ctx: ConsoleContext, request: Request, session: ConsoleSession) -> Response:
    user = await ctx.call(request, session, "GET", _path(request))
    live = await ctx.call(request, session, "GET", _path(request) + "/sessions")
    return ctx.page(
        request,
        session,
        "user.html",
        "users",
        user=user,
        sessions=live["sessions"],
        min_length=ctx.services.settings.password_min_length,
    )


async def set_disabled(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, form: dict[str, str]
) -> Response:
    disable = form.get("disabled") == "true"
    user = await ctx.call(request, session, "PATCH", _path(request), {"disabled": disable})
    session.say(f"{user['username']} is {'disabled: every session ended' if disable else 'enabled'}.")
    return _back(request)


async def set_password(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, form: dict[str, str]
) -> Response:
    user = await ctx.call(request, session, "PATCH", _path(request), {"password": form.get("password", "")})
    session.say(f"{user['username']} has a new password; every session ended.")
    return _back(request)


async def log_out_everywhere(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, _form: dict[str, str]
) -> Response:
    answer = await ctx.call(request, session, "DELETE", _path(request) + "/sessions")
    count = int(answer.get("revoked", 0))
    session.say(f"{count} session{'s' if count != 1 else ''} ended.")
    return _back(request)
