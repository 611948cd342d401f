"""The keys page (the console's landing page): the timeline, its table, rotate now, revoke."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from authsvc.console.context import ApiRefused, ConsoleContext, see_other
from authsvc.console.sessions import ConsoleSession
from authsvc.console.timeline import KINDS, draw

__all__ = ["keys_page", "revoke_key", "rotate_keys"]


async def keys_page(ctx: ConsoleContext, request: Request, session: ConsoleSession) -> Response:
    view = await ctx.call(request, session, "GET", "/admin/keys")
    return ctx.page(request, session, "keys.html", "keys", view=view, timeline=draw(view), kinds=KINDS)


async def rotate_keys(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, _form: dict[str, str]
) -> Response:
    answer = await ctx.call(request, session, "POST", "/admin/keys/rotate", {"force": True})
    changes = answer.get("changes") or []
    session.say("Rotated: " + "; ".join(changes) if changes else "The key set needed no change.")
    return see_other("/console")


async def revoke_key(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, form: dict[str, str]
) -> Response:
    kid = request.path_params["kid"]
    if form.get("confirm") != "yes":
        view = await ctx.call(request, session, "GET", "/admin/keys")
        key = next((k for k in view["keys"] if k["kid"] == kid), None)
        if key is None:
            raise ApiRefused(404, "No such key.")
        return ctx.page(
            request,
            session,
            "confirm.html",
            "keys",
            title="Revoke this key?",
            subject=kid,
            text=(
                "Every token it signed is refused at once, on every server within a second. "
                "If it signs now, the standby key (or a new key) signs from now on. "
                "A revocation cannot be undone."
            ),
            action=f"/console/keys/{quote(kid, safe='')}/revoke",
            button="Revoke the key",
            cancel="/console",
        )
    await ctx.call(request, session, "POST", f"/admin/keys/{quote(kid, safe='')}/revoke")
    session.say(f"Key {kid} is revoked.")
    return see_other("/console")
