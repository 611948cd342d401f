"""The clients pages: the list; one client's details, a new secret with an overlap, removal."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from authsvc.console.context import ConsoleContext, see_other
from authsvc.console.sessions import ConsoleSession

__all__ = ["OVERLAPS", "client_page", "clients_page", "remove_client", "rotate_secret"]

#: The overlaps offered for a new secret: seconds -> words.
OVERLAPS = {
    0: "None (the old secret stops now)",
    300: "5 minutes",
    3600: "1 hour",
    86400: "1 day",
    604800: "7 days",
}


def _path(request: Request) -> str:
    return f"/admin/clients/{quote(request.path_params['client_id'], safe='')}"


async def clients_page(ctx: ConsoleContext, request: Request, session: ConsoleSession) -> Response:
    answer = await ctx.call(request, session, "GET", "/admin/clients")
    clients = sorted(answer["clients"], key=lambda c: c["client_id"])
    return ctx.page(request, session, "clients.html", "clients", clients=clients)


async def client_page(ctx: ConsoleContext, request: Request, session: ConsoleSession) -> Response:
    client = await ctx.call(request, session, "GET", _path(request))
    return ctx.page(
        request, session, "client.html", "clients", client=client, overlaps=OVERLAPS, now=ctx.now()
    )


async def rotate_secret(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, form: dict[str, str]
) -> Response:
    overlap = form.get("overlap", "")
    if not overlap.isdigit() or int(overlap) not in OVERLAPS:
        session.say("Choose an overlap from the list.", "error")
        return see_other("/console" + _path(request).removeprefix("/admin"))
    answer = await ctx.call(request, session, "POST", _path(request) + "/secret", {"overlap": int(overlap)})
    return ctx.page(request, session, "secret.html", "clients", answer=answer, overlap=OVERLAPS[int(overlap)])


async def remove_client(
    ctx: ConsoleContext, request: Request, session: ConsoleSession, form: dict[str, str]
) -> Response:
    client_id = request.path_params["client_id"]
    if form.get("confirm") != "yes":
        await ctx.call(request, session, "GET", _path(request))  # a 404 for an unknown client
        return ctx.page(
            request,
            session,
            "confirm.html",
            "clients",
            title="Remove this client?",
            subject=client_id,
            text=(
                "Its tokens stop working at once and its sessions end. "
                "The id is never given to another client."
            ),
            action=f"/console/clients/{quote(client_id, safe='')}/remove",
            button="Remove the client",
            cancel=f"/console/clients/{quote(client_id, safe='')}",
        )
    await ctx.call(request, session, "DELETE", _path(request))
    session.say(f"Client {client_id} is removed.")
    return see_other("/console/clients")
